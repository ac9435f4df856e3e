"""The Compare tab as an annotator sees it (issue 27 items 7, 8, 9 and 11), in a real headless Chromium.

- Layout: at 1280x720 both answers are readable (tall panes that scroll inside) and every vote control
  down to Submit is on screen unscrolled; at 390x844 the same holds with shorter panes.
- Keys: a full vote is at most 6 keystrokes (here 4: choice, strength, safety, Enter), counted in
  the page; each option shows its key.
- Reload: mid-pair, the page reopens on Compare with the same pair and the selections made.
- Streaming: "Ask both" shows each answer as it is written, and says which one the model is on
  before its first word.

Screenshots go to test-artifacts/compare-walk/ (or to $MEDCHAT_WALK_DIR).
"""

import os
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.system.test_browser import CHROMIUM, running_app
from tests.system.test_labelling_browser import WORDY, WordyEngine, browser  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM}: apt-get install chromium"
    ),
]
DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
QUESTIONS = ("What INR should I aim for on warfarin?", "How is asthma treated?")
WALK = Path(os.environ.get("MEDCHAT_WALK_DIR") or REPO / "test-artifacts" / "compare-walk")
# counts every key the person presses on the page (a keystroke is a keydown that is not a repeat)
COUNT_KEYS = """() => { window.__keys = 0;
  document.addEventListener('keydown', (e) => { if (!e.repeat) window.__keys += 1; }, true); }"""


class LongEngine(WordyEngine):
    """Replies twice as long as the bundled model's usually are: longer than a pane at 1280x720."""

    def stream(self, messages, params):
        yield from super().stream(messages, params)
        yield from (f" {w}" for w in WORDY.replace("same day", "very same day").split())


@pytest.fixture
def prepared(few_index, settings, embedder, tmp_path):
    def ready(app) -> None:
        app.medchat_compare.prepare(10)  # both pairs written before anyone arrives

    with running_app(settings, embedder, tmp_path, LongEngine(), QUESTIONS, before_launch=ready) as running:
        yield running


def signed_in(browser, url: str, user: str, viewport: dict[str, int]):  # noqa: F811
    from playwright.sync_api import expect

    expect.set_options(timeout=90_000)  # two CPU cores shared with other work
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill("secret")
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Chat").wait_for()
    return page


def shot(page, name: str) -> None:
    WALK.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(WALK / f"{name}.png"))


def on_screen(page, selector: str, viewport: dict[str, int]) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], (selector, box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (selector, box)


@pytest.mark.parametrize(
    ("viewport", "pane_min"), [(DESKTOP, 240), (PHONE, 100)], ids=["1280x720", "390x844"]
)
def test_both_answers_and_the_whole_vote_fit_one_screen(prepared, browser, viewport, pane_min):  # noqa: F811
    from playwright.sync_api import expect

    url, _store, _app = prepared
    page = signed_in(browser, url, "nurse_bo", viewport)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-next").click()
    expect(page.locator("#cmp-status")).to_contain_text("Both answers are in")
    expect(page.locator("#cmp-submit")).to_be_enabled()
    assert page.evaluate("() => window.scrollY") == 0
    for part in ("#cmp-question", "#cmp-left", "#cmp-right", "#cmp-choice", "#cmp-strength", "#cmp-safety"):
        on_screen(page, part, viewport)
    on_screen(page, "#cmp-submit", viewport)
    for pane in ("#cmp-left", "#cmp-right"):
        # tall enough to read, and a long answer scrolls inside its pane (the wordy answer is longer
        # than the pane) instead of being cut off or pushing the vote down
        size = page.locator(pane).evaluate(
            "(e) => ({h: e.clientHeight, content: e.scrollHeight, overflow: getComputedStyle(e).overflowY})"
        )
        assert size["h"] >= pane_min, (pane, size)
        assert size["overflow"] == "auto" and size["content"] > size["h"], (pane, size)
        page.locator(pane).evaluate("(e) => { e.scrollTop = e.scrollHeight; }")
        expect(page.locator(pane)).to_contain_text("the very same day.")  # the last words, scrolled to
        last = page.locator(pane).get_by_text("the very same day.")
        assert last.bounding_box()["y"] + last.bounding_box()["height"] <= viewport["height"]
    # each option shows its key
    badge = (
        page.locator("#cmp-strength label")
        .first.locator("span")
        .evaluate("(e) => getComputedStyle(e, '::after').content")
    )
    assert badge == '"Q"'
    shot(page, f"compare-{viewport['width']}x{viewport['height']}")


def test_a_full_vote_takes_four_keystrokes_and_a_tie_three(prepared, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, store, _app = prepared
    page = signed_in(browser, url, "nurse_bo", DESKTOP)
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#cmp-keys")).to_contain_text("Q W E R")
    page.locator("#cmp-next").click()  # the focus stays on Next: Enter must still submit the vote
    expect(page.locator("#cmp-submit")).to_be_enabled()
    page.evaluate(COUNT_KEYS)
    for key in ("1", "q", "z", "Enter"):  # A is better, significantly, both safe, submit
        page.keyboard.press(key)
    expect(page.locator("#cmp-reveal")).to_contain_text("Saved")
    assert page.evaluate("() => window.__keys") == 4
    (j,) = store.judgments()
    assert (j.choice, j.strength, j.safety_bin) == ("A", "significantly", "both_safe")
    assert store.pending_round("nurse_bo") is None  # Next was not pressed by the Enter

    page.keyboard.press("Alt+n")
    expect(page.locator("#cmp-question textarea")).to_have_value(QUESTIONS[1])
    expect(page.locator("#cmp-submit")).to_be_enabled()
    page.evaluate("() => { window.__keys = 0; }")
    for key in ("3", "x", "Enter"):  # tie, A is unsafe: refused without a rationale, in words
        page.keyboard.press(key)
    expect(page.get_by_text("say in the rationale what could cause harm")).to_be_visible()
    page.keyboard.press("z")  # both safe
    page.keyboard.press("Enter")
    expect(page.locator("#cmp-reveal")).to_contain_text("Saved")
    assert page.evaluate("() => window.__keys") == 5  # 3 for the tie itself; 2 to mend the refusal
    assert [j.choice for j in store.judgments()] == ["A", "tie"]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x720", "390x844"])
def test_saved_shows_on_screen_and_a_late_key_never_takes_the_rationale(prepared, browser, viewport):  # noqa: F811
    # the labelling walk: "Saved" sat below the fold at both sizes; a strength key applied after its
    # round trip took the focus from the rationale, and the typed letters became vote keys
    from playwright.sync_api import expect

    url, store, _app = prepared
    page = signed_in(browser, url, "nurse_bo", viewport)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-next").click()
    expect(page.locator("#cmp-submit")).to_be_enabled()
    page.keyboard.press("1")
    page.keyboard.press("w")  # "by how much" opens only after the server has seen the choice
    page.locator("#cmp-rationale textarea").click()
    page.keyboard.type("A gives a wrong dose", delay=20)
    expect(page.locator("#cmp-strength input[type=radio]").nth(1)).to_be_checked()
    expect(page.locator("#cmp-rationale textarea")).to_have_value("A gives a wrong dose")
    assert page.locator("#cmp-safety input:checked").count() == 0  # no letter of it picked a safety
    page.keyboard.press("Control+Enter")  # refused: no safety verdict; then pick it and submit
    page.locator("#cmp-safety label").first.click()
    page.keyboard.press("Control+Enter")
    status = page.locator("#cmp-status")
    expect(status).to_contain_text("Saved")
    on_screen(page, "#cmp-status", viewport)
    (j,) = store.judgments()
    assert (j.choice, j.strength, j.rationale) == ("A", "better", "A gives a wrong dose")
    shot(page, f"compare-saved-{viewport['width']}x{viewport['height']}")


def test_a_reload_mid_pair_reopens_compare_on_the_same_pair_with_the_selections(
    prepared,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    url, store, _app = prepared
    page = signed_in(browser, url, "nurse_bo", DESKTOP)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-next").click()
    expect(page.locator("#cmp-submit")).to_be_enabled()
    left = page.locator("#cmp-left").inner_text()
    page.keyboard.press("2")  # B is better
    page.keyboard.press("w")  # better
    page.keyboard.press("x")  # A is unsafe
    page.locator("#cmp-rationale textarea").fill("A gives no INR range")
    page.locator("#cmp-rationale textarea").blur()
    page.wait_for_timeout(1500)  # the last change reaches the server (outside the queue)

    page.reload()
    compare = page.get_by_role("tab", name="Compare")
    expect(compare).to_have_attribute("aria-selected", "true")  # not Chat
    expect(page.locator("#cmp-status")).to_contain_text("back with your selections")
    expect(page.locator("#cmp-question textarea")).to_have_value(QUESTIONS[0])
    expect(page.locator("#cmp-left")).to_have_text(left)
    expect(page.locator("#cmp-choice").get_by_label("B is better")).to_be_checked()
    expect(page.locator("#cmp-strength").get_by_label("Better", exact=True)).to_be_checked()
    expect(page.locator("#cmp-strength input").first).to_be_enabled()
    expect(page.locator("#cmp-safety").get_by_label("A is unsafe")).to_be_checked()
    expect(page.locator("#cmp-rationale textarea")).to_have_value("A gives no INR range")
    shot(page, "compare-after-reload-1280x720")
    page.locator("#cmp-submit").click()
    expect(page.locator("#cmp-reveal")).to_contain_text("Saved")
    (j,) = store.judgments()
    assert (j.choice, j.strength, j.safety_bin, j.rationale) == (
        "B",
        "better",
        "one_unsafe",
        "A gives no INR range",
    )
    r = store.round(j.comparison_id, "nurse_bo")
    assert r.question == QUESTIONS[0] and j.unsafe_response_id == r.left.id

    # a new pair starts blank, and a reload then keeps it blank; a reload on Chat stays on Chat
    page.locator("#cmp-next").click()
    expect(page.locator("#cmp-question textarea")).to_have_value(QUESTIONS[1])
    expect(page.locator("#cmp-choice input:checked")).to_have_count(0)
    page.get_by_role("tab", name="Chat").click()
    page.wait_for_timeout(500)
    page.reload()
    expect(page.get_by_role("tab", name="Compare")).to_be_visible()
    page.wait_for_timeout(1500)
    expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")


class GatedEngine(WordyEngine):
    """Wordy replies that stop where the test says: the first answer before its first word and after
    a few words, the second after a few words, until the test lets each go on."""

    def __init__(self) -> None:
        super().__init__()
        self.begin, self.first, self.second = threading.Event(), threading.Event(), threading.Event()
        self.count = 0
        self.lock = threading.Lock()

    def stream(self, messages, params):
        with self.lock:
            self.count += 1
            n = self.count
        if n == 1:
            self.begin.wait(60)
        for i, piece in enumerate(super().stream(messages, params)):
            if i == 12 and n <= 2:
                (self.first if n == 1 else self.second).wait(60)
            yield piece


def test_ask_both_streams_each_answer_as_it_is_written(few_index, settings, embedder, tmp_path, browser):  # noqa: F811
    from playwright.sync_api import expect

    engine = GatedEngine()
    with running_app(settings, embedder, tmp_path, engine) as (url, store, _app):
        page = signed_in(browser, url, "dr_ada", DESKTOP)
        page.get_by_role("tab", name="Compare").click()
        page.locator("#cmp-question textarea").fill("How is asthma treated in adults?")
        page.locator("#cmp-ask").click()
        # before the first word: said in words in both panes, not a spinner
        expect(page.locator("#cmp-left")).to_contain_text("writing answer A")
        expect(page.locator("#cmp-right")).to_contain_text("written once A is done")
        expect(page.locator("#cmp-status")).to_contain_text("A now, then B")
        shot(page, "compare-ask-both-before-first-word")
        engine.begin.set()
        # A's first words, while the rest of A is not written yet
        expect(page.locator("#cmp-left")).to_contain_text("Reply at temperature")
        assert WORDY.split()[-1] not in page.locator("#cmp-left").inner_text()
        expect(page.locator("#cmp-submit")).to_be_disabled()
        shot(page, "compare-ask-both-streaming-A")
        engine.first.set()
        # A is done; B's first words are on screen before B is finished
        expect(page.locator("#cmp-left")).to_contain_text("same day.")
        expect(page.locator("#cmp-right")).to_contain_text("Reply at temperature")
        expect(page.locator("#cmp-status")).to_contain_text("B now")
        assert "same day" not in page.locator("#cmp-right").inner_text()
        assert store.count_judgments() == 0
        shot(page, "compare-ask-both-streaming-B")
        engine.second.set()
        expect(page.locator("#cmp-status")).to_contain_text("Both answers are in")
        expect(page.locator("#cmp-right")).to_contain_text("same day.")
        expect(page.locator("#cmp-submit")).to_be_enabled()
