"""A real headless Chromium (Debian's `chromium`, driven by Playwright) logs in, asks, votes and the
vote is in the database; a reload mid-comparison brings the open comparison back. Screenshots of
each tab go to test-artifacts/."""

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from chatbot.chain import Chain
from chatbot.labelling.store.prefs import PreferenceStore
from chatbot.retrieval import open_retriever
from chatbot.ui.auth import User, Users, hash_password
from chatbot.ui.serve import launch_local
from tests.conftest import REPO
from tests.labelling.test_compare import VARIANTS, PerTemperatureEngine

CHROMIUM = os.environ.get("MEDCHAT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM}: apt-get install chromium"
    ),
]


def accounts() -> Users:
    return Users(
        {
            "dr_ada": User("dr_ada", "clinician", hash_password("secret", iterations=1000), admin=True),
            "nurse_bo": User("nurse_bo", "nurse", hash_password("secret", iterations=1000)),
            "pat_cy": User("pat_cy", "patient", hash_password("secret", iterations=1000)),
        }
    )


@contextlib.contextmanager
def running_app(settings, embedder, tmp_path, engine, questions=(), *, before_launch=None):
    """The real app on a free loopback port, with logins, `engine` answering, `questions` queued."""
    from chatbot.ui.app import build_app

    store = PreferenceStore(f"sqlite:///{tmp_path / 'prefs.sqlite3'}")
    if questions:
        store.add_queue_items([{"question": q} for q in questions], batch="t")
    users = accounts()
    chain = Chain(settings, retriever=open_retriever(settings, embedder), engine=engine)
    app = build_app(chain, store=store, variants=VARIANTS, users=users)
    if before_launch:
        before_launch(app)
    url = launch_local(app, users)
    try:
        yield url, store, app
    finally:
        app.close()
        store.close()


@pytest.fixture
def served(few_index, settings, embedder, tmp_path):
    with running_app(settings, embedder, tmp_path, PerTemperatureEngine()) as (url, store, _app):
        yield url, store


@pytest.fixture
def browser(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    pw = sync_api.sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile every run
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1440, "height": 900},
        )
    except Exception as e:  # a chromium Playwright cannot drive is an environment problem, not a failure
        pw.stop()
        pytest.skip(f"cannot start {CHROMIUM} through Playwright: {e}")
    try:
        yield context
    finally:
        context.close()
        pw.stop()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def signed_in(browser, url: str, user: str, timeout: int = 60_000):
    """A new page of `browser`, logged in to `url` as `user` (password "secret")."""
    page = browser.new_page()
    page.set_default_timeout(timeout)
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill("secret")
    page.get_by_role("button", name="Login").click()
    return page


def test_log_in_ask_vote_and_the_vote_is_stored(served, browser):
    from playwright.sync_api import expect

    url, store = served
    page = signed_in(browser, url, "dr_ada")

    # chat tab
    page.locator("#question textarea").fill("What is a normal INR on warfarin?")
    page.locator("#ask").click()
    expect(page.locator("#sources")).to_contain_text("warfarin", timeout=90_000)
    shot(page, "tab-chat")

    # compare tab: voting opens only when both answers are in
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#cmp-submit")).to_be_disabled()
    page.locator("#cmp-question textarea").fill("What INR should I aim for on warfarin?")
    page.locator("#cmp-ask").click()
    expect(page.locator("#cmp-status")).to_contain_text("Both answers are in", timeout=90_000)
    expect(page.locator("#cmp-submit")).to_be_enabled()
    expect(page.locator("#cmp-left")).to_contain_text("Reply at temperature")
    left = page.locator("#cmp-left").inner_text()
    assert "Reply at temperature" in left
    page.locator("#cmp-choice").get_by_text("A is better").click()
    page.locator("#cmp-strength").get_by_text("Slightly better").click()
    page.locator("#cmp-safety").get_by_text("Both safe").click()
    shot(page, "tab-compare-before-vote")
    page.locator("#cmp-submit").click()
    expect(page.locator("#cmp-reveal")).to_contain_text("Saved")
    reveal = page.locator("#cmp-reveal").inner_text()
    assert "warm" in reveal and "cold" in reveal  # the names are revealed after the vote
    expect(page.locator("#cmp-submit")).to_be_disabled()  # the round is locked
    expect(page.locator("#cmp-choice input").first).to_be_disabled()
    shot(page, "tab-compare-after-vote")

    (j,) = store.judgments()
    assert (j.annotator, j.role, j.choice, j.strength, j.safety_bin) == (
        "dr_ada",
        "clinician",
        "A",
        "slightly",
        "both_safe",
    )
    r = store.round(j.comparison_id, "dr_ada")
    shown = r.left.text.replace("[not in your sources]", "not in your sources")  # the mark as a label
    assert j.winner_response_id == r.left.id and shown in left  # A is what was shown on the left

    # changing the vote stores a new judgment and keeps the old one as superseded
    page.locator("#cmp-edit").click()
    expect(page.locator("#cmp-submit")).to_be_enabled()
    page.locator("#cmp-choice").get_by_text("B is better").click()
    page.locator("#cmp-submit").click()
    expect(page.locator("#cmp-reveal")).to_contain_text("replaces your earlier vote")
    (j2,) = store.judgments()
    assert j2.choice == "B" and j2.supersedes_id == j.id and len(store.judgments(status=None)) == 2

    # a reload mid-comparison brings the open pair back; the stored vote stays
    page.locator("#cmp-question textarea").fill("Is an INR of 4 too high on warfarin?")
    page.locator("#cmp-ask").click()
    expect(page.locator("#cmp-reveal")).not_to_contain_text("Saved")  # the new round has started blank
    expect(page.locator("#cmp-status")).to_contain_text("Both answers are in", timeout=90_000)
    expect(page.locator("#cmp-left")).to_contain_text("Reply at temperature")
    before = page.locator("#cmp-left").inner_text()
    page.reload()
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#cmp-status")).to_contain_text("unfinished comparison is back")
    expect(page.locator("#cmp-left")).to_contain_text("Reply at temperature")
    assert page.locator("#cmp-left").inner_text() == before
    expect(page.locator("#cmp-hello")).to_contain_text("1 judgment(s) saved")
    assert store.count_judgments() == 1

    page.get_by_role("tab", name="Results").click()
    page.locator("#res-refresh").click()
    expect(page.locator("#res-summary")).to_contain_text("1")
    shot(page, "tab-results")


def test_each_triage_level_has_its_own_coloured_banner_in_the_chat(served, browser):
    # the real triage classifier decides; the levels must differ on the page without the emoji font
    from playwright.sync_api import expect

    url, _store = served
    browser.grant_permissions(["clipboard-read", "clipboard-write"])
    page = signed_in(browser, url, "nurse_bo", timeout=90_000)
    cases = [
        ("my dad's face has dropped on one side and he can't lift his arm", "emergency", "EMERGENCY"),
        (
            "got bitten by my neighbours dog on the hand this morning, it broke the skin and its getting red",
            "urgent",
            "URGENT: see a doctor or urgent care today",
        ),
        ("What is a normal INR on warfarin?", "routine", "Triage: routine"),
    ]
    colours = {}
    for text, level, words in cases:
        page.locator("#clear").click()
        page.locator("#question textarea").fill(text)
        page.locator("#ask").click()
        banner = page.locator(f"#chat .triage-{level}")
        expect(banner).to_be_visible(timeout=120_000)  # the first message loads the triage encoder
        expect(banner).to_contain_text(words)
        expect(page.locator("#stop")).to_be_disabled(timeout=120_000)  # the answer is finished
        assert page.locator("#chat .triage-mark").count() == 1  # one banner, this level's
        colours[level] = banner.evaluate("el => getComputedStyle(el).backgroundColor")
        shot(page, f"triage-{level}")
        if level == "emergency":  # the copy button copies the words as shown, not escaped Markdown
            page.locator("#chat button[aria-label='Copy message']").last.click()
            copied = ""
            for _ in range(50):
                copied = page.evaluate("navigator.clipboard.readText()")
                if copied.startswith("🚨 EMERGENCY"):
                    break
                page.wait_for_timeout(100)
            assert copied.startswith("🚨 EMERGENCY\n\nThis may be an emergency. Call 112 or 911 (your local")
            assert "&#" not in copied and "<" not in copied
    assert len(set(colours.values())) == 3, colours


def test_a_guess_is_answered_under_a_warning_and_a_real_emergency_still_gets_the_emergency_line(
    served, browser
):
    # issue #28: "qvar 40mg what is it for" once got meningitis first aid and no answer
    from playwright.sync_api import expect

    url, _store = served
    page = signed_in(browser, url, "nurse_bo", timeout=90_000)
    page.locator("#question textarea").fill("qvar 40mg what is it for")
    page.locator("#ask").click()
    reply = page.locator("#chat .message-row").last
    banner = page.locator("#chat .triage-mark")
    expect(banner).to_be_visible(timeout=120_000)  # the first message loads the triage encoder
    expect(page.locator("#stop")).to_be_disabled(timeout=120_000)
    shown = reply.inner_text()
    assert "EMERGENCY" not in shown and "meningitis" not in shown.lower()
    if page.locator("#chat .triage-urgent").count():  # graded: the warning names what to watch for
        expect(banner).to_contain_text("URGENT")
        assert "could not rule out" in shown and "Watch for" in shown, shown
    # the answer is given below the banner, with the disclaimer every answer carries
    assert "not medical advice" in shown
    assert len(shown.replace(banner.inner_text(), "").split()) > 20, shown
    shot(page, "triage-graded")

    page.locator("#clear").click()
    page.locator("#question textarea").fill("i took 25 iron pills last night")
    page.locator("#ask").click()
    expect(page.locator("#chat .triage-emergency")).to_be_visible(timeout=120_000)
    expect(page.locator("#chat .triage-emergency")).to_contain_text("EMERGENCY")
    expect(page.locator("#chat .message-row").last).to_contain_text("Call 112 or 911")
