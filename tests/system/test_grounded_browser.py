"""What a person reads in the chat after the grounding check, in a real headless Chromium: cited
sentences whose [n] open the source with the deciding words highlighted, a contradicted sentence
replaced by what the source says, unsupported sentences only under a collapsed "Not in your
sources", and a stopped answer that ends with a note, its sources and the disclaimer."""

# ruff: noqa: F811  (pytest fixtures imported from test_browser are arguments here)
import threading

import pytest

from chatbot.engines.fake import FakeEngine
from chatbot.safety.wording import DISCLAIMER, STOPPED_NOTE
from tests.system.test_browser import browser, running_app, shot, signed_in  # noqa: F401

REPLY = (
    "The usual target is INR 2.5 (range 2.0-3.0) for AF [1]. "
    "For AF the INR range is 3.5-4.5 [1]. "
    "Warfarin is best taken with grapefruit juice."
)


class SlowEngine(FakeEngine):
    """Writes `REPLY` a word at a time, then many more words, slowly enough to be stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped = threading.Event()

    def stream(self, messages, params):
        self.calls.append(list(messages))
        words = (REPLY + " More words follow here." * 200).split(" ")
        try:
            for n, word in enumerate(words):
                yield word if n == 0 else " " + word
                threading.Event().wait(0.05 if n > 30 else 0.0)
        finally:
            self.stopped.set()


def ask(page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 720}, {"width": 390, "height": 844}])
def test_a_checked_answer_shows_only_what_the_sources_say(
    few_index,
    settings,
    embedder,
    tmp_path,
    browser,
    viewport,
):
    from playwright.sync_api import expect

    settings.generation.grounding = "checked"
    engine = FakeEngine()
    engine.enqueue(REPLY)
    with running_app(settings, embedder, tmp_path, engine) as (url, _store, _app):
        page = signed_in(browser, url, "nurse_bo", timeout=120_000)
        page.set_viewport_size(viewport)
        ask(page, "What INR range is the target on warfarin for atrial fibrillation?")
        reply = page.locator("#chat .message-row").last
        expect(reply).to_contain_text(DISCLAIMER, timeout=120_000)
        shown = reply.inner_text()
        # the supported sentence, the source's own words in place of the contradicted one
        assert "The usual target is INR 2.5 (range 2.0-3.0) for AF [1]." in shown
        assert "Your source says otherwise: “The usual target is INR 2.5 (range 2.0-3.0)" in shown
        assert "3.5-4.5" not in shown
        # the unsupported sentence is only behind a collapsed list
        withheld = reply.locator("details.withheld")
        expect(withheld).to_contain_text("Not in your sources (1)")
        expect(withheld.get_by_text("Warfarin is best taken with grapefruit juice.")).not_to_be_visible()
        withheld.locator("summary").click()
        expect(withheld.get_by_text("Warfarin is best taken with grapefruit juice.")).to_be_visible()
        # [1] is a link that opens source 1 with the deciding words highlighted
        source = page.locator("#sources #src-1")
        page.evaluate("document.querySelector('#sources #src-1').open = false")
        reply.locator("a.cite").first.click()
        expect(source).to_have_attribute("open", "")
        mark = source.locator("mark").first
        expect(mark).to_be_visible()
        assert "2.0-3.0" in mark.inner_text()
        assert "#src" not in page.url  # the page did not navigate: the script opened the source
        expect(page.locator("#question textarea")).to_be_visible()
        shot(page, f"grounded-checked-{viewport['width']}")


def test_the_default_answer_quotes_the_sources(few_index, settings, embedder, tmp_path, browser):
    from playwright.sync_api import expect

    from chatbot.settings import GenerationSettings

    assert GenerationSettings.model_fields["grounding"].default == "extractive"
    settings.generation.grounding = "extractive"  # the tests run with "free" (conftest)

    engine = FakeEngine()
    with running_app(settings, embedder, tmp_path, engine) as (url, _store, _app):
        page = signed_in(browser, url, "nurse_bo", timeout=120_000)
        ask(page, "What INR range is the target on warfarin for atrial fibrillation?")
        reply = page.locator("#chat .message-row").last
        expect(reply).to_contain_text(DISCLAIMER, timeout=120_000)
        assert "The usual target is INR 2.5 (range 2.0-3.0) for AF and venous clots [" in reply.inner_text()
        assert engine.calls == []  # no model text at all
        assert reply.locator("a.cite").count() >= 1
        shot(page, "grounded-extractive")


def test_a_stopped_answer_ends_with_a_note_its_sources_and_the_disclaimer(
    few_index,
    settings,
    embedder,
    tmp_path,
    browser,
):
    from playwright.sync_api import expect

    settings.generation.grounding = "free"
    engine = SlowEngine()
    with running_app(settings, embedder, tmp_path, engine) as (url, _store, _app):
        page = signed_in(browser, url, "nurse_bo", timeout=120_000)
        ask(page, "What INR range is the target on warfarin for atrial fibrillation?")
        expect(page.locator("#chat")).to_contain_text("More words follow", timeout=120_000)
        page.locator("#stop").click()
        reply = page.locator("#chat .message-row").last
        expect(reply).to_contain_text(STOPPED_NOTE, timeout=60_000)
        expect(reply).to_contain_text(DISCLAIMER)
        expect(page.locator("#sources #src-1")).to_be_attached()
        assert engine.stopped.wait(30)
        shot(page, "grounded-stopped")
