"""The chat as a person lives it, in a real headless Chromium (issue #27, chat items): an empty
question, a reload mid-conversation, a question in French, and a phone-sized screen."""

# ruff: noqa: F811  (pytest fixtures imported from test_browser are arguments here)
import pytest

from chatbot.engines.fake import FakeEngine
from chatbot.safety.wording import DISCLAIMER
from tests.system.test_browser import browser, running_app, shot, signed_in  # noqa: F401


@pytest.fixture
def chat_app(few_index, settings, embedder, tmp_path):
    with running_app(settings, embedder, tmp_path, FakeEngine()) as (url, _store, _app):
        yield url


def ask(page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()


def in_view(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"]


def test_empty_question_reload_and_phone_screen(chat_app, browser):
    from playwright.sync_api import expect

    page = signed_in(browser, chat_app, "nurse_bo", timeout=120_000)
    ask(page, "What INR range is the target on warfarin for atrial fibrillation?")
    reply = page.locator("#chat .message-row").last
    expect(reply).to_contain_text(DISCLAIMER, timeout=120_000)
    expect(page.locator("#chat-status")).to_contain_text("Answered in")

    # an empty question: a message that stays, nothing closed, the conversation kept
    page.locator("#question textarea").fill("   ")
    page.locator("#ask").click()
    expect(page.locator("#chat-status")).to_contain_text("Type a medical question first")
    expect(page.locator("#question textarea")).to_be_editable()
    expect(page.locator("#ask")).to_be_enabled()
    page.wait_for_timeout(1500)
    expect(page.locator("#chat-status")).to_contain_text("Type a medical question first")  # not a toast
    assert page.locator("#chat .message-row").count() == 2
    assert page.locator(".toast-wrap .error, .error-message").count() == 0

    # a reload opens on the same conversation and its sources
    page.reload()
    expect(page.locator("#chat")).to_contain_text("What INR range is the target", timeout=60_000)
    expect(page.locator("#chat")).to_contain_text(DISCLAIMER)
    expect(page.locator("#sources #src-1")).to_be_attached()
    expect(page.locator("#chat-status")).to_contain_text("Your conversation is back")

    # on a phone the question box and Ask are on screen without scrolling
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#chat")).to_contain_text(DISCLAIMER, timeout=60_000)
    assert in_view(page, "#question textarea") and in_view(page, "#ask"), page.locator("#ask").bounding_box()
    shot(page, "chat-phone")

    # New conversation really starts again, after a reload too
    page.locator("#clear").click()
    expect(page.locator("#chat .message-row")).to_have_count(0)
    page.reload()
    page.wait_for_timeout(2000)
    assert page.locator("#chat .message-row").count() == 0


def test_a_question_in_french_gets_the_notice_in_french_and_no_routine_badge(chat_app, browser):
    from playwright.sync_api import expect

    page = signed_in(browser, chat_app, "nurse_bo", timeout=120_000)
    ask(page, "Quelle est la dose de paracétamol pour mon fils de six ans avec de la fièvre ?")
    reply = page.locator("#chat .message-row").last
    expect(reply).to_contain_text(DISCLAIMER, timeout=120_000)
    banner = reply.locator(".triage-foreign")
    expect(banner).to_contain_text("Not English (French)")
    expect(banner).to_contain_text("medchat ne lit et ne répond qu'en anglais")
    assert reply.locator(".triage-routine").count() == 0
    shot(page, "chat-french")
