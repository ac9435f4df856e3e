"""The labelling session as a clinician lives it, in a real headless Chromium at 1440x900 (#13, #14.5).

Each test drives the page the way a person does and asserts what they see: the question on screen,
progress, Skip, a friendly end of the queue, plain refusals, controls locked while an answer streams,
follow-ups that keep their topic, and documents that cannot reach the network or restyle the page.
A screenshot of the Compare screen goes to test-artifacts/compare.png, or to docs/compare.png (the
README shows it) with MEDCHAT_UPDATE_SCREENSHOTS=1.
"""

import http.server
import os
import shutil
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine
from chatbot.labelling.store.prefs import PreferenceStore
from chatbot.ui.serve import launch_local
from tests.conftest import REPO
from tests.labelling.test_compare import PerTemperatureEngine
from tests.system.test_browser import CHROMIUM, FLAGS, accounts, running_app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM}: apt-get install chromium"
    ),
]
SCREEN = {"width": 1440, "height": 900}
DOCS = REPO / "docs"


@pytest.fixture
def browser(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    pw = sync_api.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    except Exception as e:  # a chromium Playwright cannot drive is an environment problem, not a failure
        pw.stop()
        pytest.skip(f"cannot start {CHROMIUM} through Playwright: {e}")
    try:
        yield b
    finally:
        b.close()
        pw.stop()


def login(browser, url: str, user: str):
    from playwright.sync_api import expect

    expect.set_options(timeout=90_000)  # two CPU cores shared with other work: be patient, not flaky
    page = browser.new_context(viewport=SCREEN).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill("secret")
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Chat").wait_for()
    return page


# -- Compare: the queue from the first item to the end -----------------------------------------

WORDY = (
    " Warfarin thins the blood by blocking vitamin K, so its dose is set by a blood test, the INR."
    " For most people with atrial fibrillation or a clot in a leg vein or the lungs the target is"
    " 2.5, and anything from 2.0 to 3.0 counts as in range. [1] People with some mechanical heart"
    " valves are given a higher range by their specialist. The INR is checked often when warfarin is"
    " started, then every few weeks once it is stable, and again whenever another medicine is started"
    " or stopped, because many medicines and changes in diet move it. A result far above the range"
    " raises the risk of bleeding, and one below it raises the risk of a new clot, so an unexpected"
    " result is a reason to call the anticoagulation clinic the same day."
)


class WordyEngine(PerTemperatureEngine):
    """Replies as long as the bundled model's usually are (about 130 words), to test the layout."""

    def stream(self, messages, params):
        yield from super().stream(messages, params)
        yield from (f" {w}" for w in WORDY.split())


@pytest.fixture
def labelling(few_index, settings, embedder, tmp_path):
    questions = ("What INR should I aim for on warfarin?", "How is asthma treated?")
    with running_app(settings, embedder, tmp_path, WordyEngine(), questions) as running:
        yield running


def test_an_annotator_works_through_the_queue_with_the_question_on_screen(labelling, browser):
    from playwright.sync_api import expect

    url, store, app = labelling
    app.medchat_compare.prepare(10)  # the batch step: both pairs are ready before anyone arrives
    page = login(browser, url, "nurse_bo")
    # an annotator sees no Results tab and cannot pick the variants they judge
    expect(page.get_by_role("tab", name="Results")).to_have_count(0)
    page.get_by_text("Answer settings").click()
    expect(page.locator("#chat-variant")).to_have_count(0)

    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#cmp-keys")).to_contain_text("Ctrl+Enter")
    page.locator("#cmp-next").click()
    expect(page.locator("#cmp-status")).to_contain_text("Both answers are in")
    expect(page.locator("#cmp-question textarea")).to_have_value("What INR should I aim for on warfarin?")
    expect(page.locator("#cmp-progress")).to_contain_text("Item 1 of 2")
    expect(page.locator("#cmp-skip")).to_be_enabled()
    # question, both answers (long ones scroll in their box) and the vote on one screen, unscrolled
    assert page.evaluate("() => window.scrollY") == 0
    for part in ("#cmp-question", "#cmp-left", "#cmp-right", "#cmp-choice", "#cmp-safety", "#cmp-submit"):
        box = page.locator(part).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= SCREEN["height"], part
    # docs/compare.png (the README's picture) is rewritten only when asked, so a test run leaves git clean
    folder = DOCS if os.environ.get("MEDCHAT_UPDATE_SCREENSHOTS") else REPO / "test-artifacts"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / "compare.png"), type="png")

    # a reload keeps the question on screen
    page.reload()
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#cmp-question textarea")).to_have_value("What INR should I aim for on warfarin?")
    expect(page.locator("#cmp-status")).to_contain_text("unfinished comparison is back")

    # "By how much?" is closed until A or B wins, and closed again for a tie
    expect(page.locator("#cmp-strength input").first).to_be_disabled()
    page.keyboard.press("1")  # A is better
    expect(page.locator("#cmp-choice input").first).to_be_checked()
    expect(page.locator("#cmp-strength input").first).to_be_enabled()
    page.keyboard.press("3")  # tie
    expect(page.locator("#cmp-strength input").first).to_be_disabled()
    page.keyboard.press("2")  # B is better
    page.locator("#cmp-strength").get_by_text("Better", exact=True).click()
    # one safety input: "A is unsafe" without a rationale is refused in words, nothing is saved
    page.locator("#cmp-safety").get_by_text("A is unsafe").click()
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("say in the rationale what could cause harm")).to_be_visible()
    assert store.count_judgments() == 0
    page.locator("#cmp-rationale textarea").fill("A gives no INR range")
    page.locator("#cmp-submit").click()
    expect(page.locator("#cmp-reveal")).to_contain_text("Saved")
    expect(page.locator("#cmp-hello")).to_contain_text("1 judgment(s) saved")  # without a reload
    (j,) = store.judgments()
    assert (j.choice, j.strength, j.safety_bin, j.harm_flag, j.guideline_version) == (
        "B",
        "better",
        "one_unsafe",
        True,
        "v2",
    )
    r = store.round(j.comparison_id, "nurse_bo")
    assert j.unsafe_response_id == r.left.id

    # the next item; skipping it records the skip and ends the queue with a friendly note, no errors
    page.locator("#cmp-next").click()
    expect(page.locator("#cmp-question textarea")).to_have_value("How is asthma treated?")
    expect(page.locator("#cmp-progress")).to_contain_text("Item 2 of 2")
    toasts = page.locator(".toast-body").count()  # the refusal above is still on screen
    page.locator("#cmp-skip").click()
    # issue 27 item 10: the end says how many were skipped and offers them, not "judged every question"
    expect(page.locator("#cmp-status")).to_contain_text("You skipped 1 question: press Next question")
    expect(page.locator("#cmp-status")).not_to_contain_text("judged every")
    expect(page.locator("#cmp-progress")).to_contain_text("1 of 2 queued items done, 1 skipped")
    expect(page.locator("#cmp-next")).to_be_enabled()
    expect(page.locator("#cmp-question textarea")).to_have_value("")  # not the skipped question
    expect(page.locator("#cmp-submit")).to_be_disabled()
    expect(page.locator("#cmp-skip")).to_be_disabled()
    for panel in ("#cmp-left", "#cmp-right", "#cmp-status"):
        expect(page.locator(panel)).not_to_contain_text("Error")
        expect(page.locator(f"{panel} .error")).to_have_count(0)
    page.wait_for_timeout(500)
    assert page.locator(".toast-body").count() == toasts
    with store.session() as s:
        from chatbot.labelling.store.models import Assignment

        skipped = s.query(Assignment).filter(Assignment.skipped_at.is_not(None)).count()
    assert skipped == 1 and store.pending_round("nurse_bo") is None
    # taking up the offer brings the skipped question back
    page.locator("#cmp-next").click()
    expect(page.locator("#cmp-question textarea")).to_have_value("How is asthma treated?")
    expect(page.locator("#cmp-submit")).to_be_visible()

    # an emergency typed into Compare gets the guidance once, and nothing to vote on
    typed = "My father's face is drooping and he cannot speak"
    page.locator("#cmp-question textarea").fill(typed)
    page.locator("#cmp-ask").click()
    expect(page.locator("#cmp-status")).to_contain_text("emergency")
    expect(page.locator("#cmp-question textarea")).to_have_value(typed)  # kept as typed
    expect(page.locator("#cmp-submit")).to_be_disabled()


def test_roles_decide_what_is_shown_patient_chat_only_annotator_compare_admin_everything(labelling, browser):
    """Issue 27 item 6: a patient account saw the Compare tab and the k and temperature sliders."""
    from playwright.sync_api import expect

    url, _store, _app = labelling
    patient = login(browser, url, "pat_cy")
    expect(patient.locator("#ask")).to_be_visible()
    expect(patient.get_by_role("tab", name="Compare")).to_have_count(0)
    expect(patient.get_by_role("tab", name="Results")).to_have_count(0)
    expect(patient.get_by_text("Answer settings")).to_have_count(0)
    expect(patient.get_by_label("Passages (k)")).to_have_count(0)
    expect(patient.get_by_label("Temperature")).to_have_count(0)
    patient.close()
    nurse = login(browser, url, "nurse_bo")  # any other role annotates
    expect(nurse.get_by_role("tab", name="Compare")).to_be_visible()
    expect(nurse.get_by_role("tab", name="Results")).to_have_count(0)
    nurse.get_by_text("Answer settings").click()
    expect(nurse.get_by_label("Temperature").first).to_be_visible()
    nurse.close()
    admin = login(browser, url, "dr_ada")
    for tab in ("Chat", "Compare", "Results"):
        expect(admin.get_by_role("tab", name=tab)).to_be_visible()


def test_votes_that_contradict_themselves_or_come_after_the_reveal_are_refused(labelling, browser):
    from gradio_client import Client
    from playwright.sync_api import expect

    url, store, _app = labelling
    page = login(browser, url, "dr_ada")
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-next").click()
    expect(page.locator("#cmp-status")).to_contain_text("Both answers are in")
    client = Client(url, auth=("dr_ada", "secret"), verbose=False)
    resumed = client.predict(api_name="/compare_resume")
    assert "What INR" in resumed[5]  # the question comes back with the pair
    # the example: both safe + "A" unsafe + harm + tie + "significantly better"
    contradiction = (
        "Tie",
        "Significantly better",
        "Both safe",
        "A",
        True,
        "",
        "none",
        "",
        [],
        "",
        "none",
        "",
        [],
        "",
    )
    with pytest.raises(Exception, match="must stay empty"):
        client.predict(*contradiction, api_name="/vote")
    for fixed, words in (
        (("Tie", None, "Both safe", "A", True), "choose one safety verdict"),
        (("Tie", None, "Both safe", None, True), "marked both answers safe"),
    ):
        with pytest.raises(Exception, match=words):
            client.predict(*fixed, "", "none", "", [], "", "none", "", [], "", api_name="/vote")
    # preferring the answer marked unsafe is refused, whatever the rationale says (#27 item 12)
    unsafe_winner = ("A is better", "Better", "A is unsafe", None, False)
    with pytest.raises(Exception, match="marked A unsafe and B safe"):
        client.predict(*unsafe_winner, "", "none", "", [], "", "none", "", [], "wrong dose", api_name="/vote")
    assert store.count_judgments() == 0
    vote = ("A is better", "Better", "Both safe", None, False, "", "none", "", [], "", "none", "", [], "")
    assert client.predict(*vote, api_name="/vote").startswith("✅ Saved")
    with pytest.raises(Exception, match="Change my vote"):  # names are revealed: no silent second vote
        client.predict("B is better", *vote[1:], api_name="/vote")
    (j,) = store.judgments()
    assert j.choice == "A" and not j.after_reveal

    # in the page: a changed vote goes through "Change my vote" and is marked as cast after the reveal
    page.reload()
    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-question textarea").fill("What is a normal INR?")
    page.locator("#cmp-ask").click()
    expect(page.locator("#cmp-status")).to_contain_text("Both answers are in")
    page.locator("#cmp-choice").get_by_text("Tie").click()
    page.locator("#cmp-safety").get_by_text("Both safe").click()
    page.locator("#cmp-submit").click()
    expect(page.locator("#cmp-edit")).to_be_visible()
    page.locator("#cmp-edit").click()
    page.locator("#cmp-choice").get_by_text("A is better").click()
    page.locator("#cmp-strength").get_by_text("Slightly better").click()
    page.locator("#cmp-submit").click()
    expect(page.locator("#cmp-reveal")).to_contain_text("replaces your earlier vote")
    latest = [x for x in store.judgments() if x.choice == "A" and x.strength == "slightly"]
    assert len(latest) == 1 and latest[0].after_reveal

    # the Results tab, for an admin: readable column names, the whole table in view, a sane axis
    page.get_by_role("tab", name="Results").click()
    page.locator("#res-refresh").click()
    table = page.locator("#res-annotators")
    expect(table).to_contain_text("Chose left")
    expect(table).to_contain_text("Median time (s)")
    box = table.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= SCREEN["width"]
    expect(page.locator("#res-plot")).to_contain_text("average")
    # issue 27 item 17: win rates with 95% interval bars and a 50% line, and the reveal named the variant
    chart = page.locator("#res-winrate")
    expect(chart).to_contain_text("Win rate with 95% intervals")
    expect(chart).to_contain_text("dashed red line: 50%")
    expect(chart.locator(".res-wr-ci").first).to_be_visible()
    expect(chart.locator(".res-wr-half").first).to_be_visible()


# -- Chat: follow-ups, the controls while streaming, documents as text -------------------------


class SlowEngine(FakeEngine):
    """The fake engine, a word every `delay` s, so a test can look at the page while it streams."""

    delay = 0.15

    def stream(self, messages, params):
        for piece in super().stream(messages, params):
            time.sleep(self.delay)
            yield piece


class Trap(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        Trap.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def trap():
    """A second origin standing in for a tracker: every request it gets is recorded."""
    Trap.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trap)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Trap.hits
    finally:
        server.shutdown()


@pytest.fixture
def chat_app(settings, few_notes, embedder, trap, tmp_path):
    from ingestion.pipeline import ingest

    origin, _hits = trap
    (few_notes / "hostile.md").write_text(
        "# Warfarin clinic letter\n\n"
        f"Warfarin INR results are posted here. ![x]({origin}/track.png) "
        f'Read the INR range at <a href="{origin}/phish">the clinic page</a>. '
        f'&lt;img src="{origin}/entity.png"&gt; Keep warfarin INR checks regular.\n',
        encoding="utf-8",
    )
    ingest([few_notes], settings=settings, embedder=embedder)
    engine = SlowEngine()
    with running_app(settings, embedder, tmp_path, engine) as (url, _store, _app):
        yield url, engine, origin


def test_chat_follow_ups_keep_their_topic_and_ask_is_locked_while_streaming(chat_app, browser):
    from playwright.sync_api import expect

    url, _engine, _origin = chat_app
    page = login(browser, url, "dr_ada")
    expect(page.locator("#stop")).to_be_disabled()
    page.locator("#question textarea").fill("What blood pressure counts as hypertension in adults?")
    page.locator("#ask").click()
    expect(page.locator("#ask")).to_be_disabled()  # a second question cannot queue behind this one
    expect(page.locator("#stop")).to_be_enabled()
    expect(page.locator("#sources")).to_contain_text("hypertension", timeout=180_000)
    expect(page.locator("#ask")).to_be_enabled()
    expect(page.locator("#stop")).to_be_disabled()

    # Gradio 6 sends the history as content parts: the follow-up is searched with its topic
    page.locator("#question textarea").fill("And how is it treated at first?")
    page.locator("#ask").click()
    expect(page.locator("#ask")).to_be_enabled(timeout=180_000)
    sources = page.locator("#sources").inner_text()
    assert "hypertension" in sources.lower() and "No source was relevant" not in sources
    expect(page.locator("#chat")).not_to_contain_text("Not enough evidence")

    # Stop mid-answer unlocks Ask as soon as the answer has stopped, and a question asked at that
    # moment is answered (Ask used to reopen before the old answer ended; Gradio then dropped the
    # new question and left Ask closed and Stop open, with nothing running)
    page.locator("#question textarea").fill("What is a normal INR on warfarin?")
    page.locator("#ask").click()
    expect(page.locator("#stop")).to_be_enabled()
    page.locator("#stop").click()
    expect(page.locator("#ask")).to_be_enabled()
    page.locator("#question textarea").fill("Which foods affect warfarin?")
    page.locator("#ask").click()
    expect(page.locator("#chat")).to_contain_text("Which foods affect warfarin?")
    expect(page.locator("#ask")).to_be_enabled(timeout=180_000)
    expect(page.locator("#stop")).to_be_disabled()
    assert page.locator("#chat").inner_text().rstrip().endswith("emergency.")  # answered, disclaimer last


def test_documents_and_answers_are_text_and_remote_images_are_never_requested(chat_app, browser):
    from playwright.sync_api import expect

    url, engine, origin = chat_app
    overlay = '<b style="position:fixed;top:0;left:0;z-index:9999;font-size:80px">SPOOFED HEADER</b>'
    reply = f'**Check the INR.** [1] {overlay} ![t]({origin}/answer.png) <img src="{origin}/raw.png">'
    engine.enqueue(reply, reply, reply)
    engine.delay = 0.0
    page = login(browser, url, "dr_ada")
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    headers = page.request.get(url).headers
    assert "img-src 'self'" in headers["content-security-policy"]
    assert "frame-src 'none'" in headers["content-security-policy"]

    page.locator("#question textarea").fill("Where are warfarin INR results posted?")
    page.locator("#ask").click()
    expect(page.locator("#sources")).to_contain_text("Warfarin clinic letter", timeout=180_000)
    expect(page.locator("#ask")).to_be_enabled(timeout=180_000)
    # the markup is shown as the characters it is made of
    expect(page.locator("#sources")).to_contain_text(f"![x]({origin}/track.png)")
    expect(page.locator("#chat")).to_contain_text("SPOOFED HEADER")
    expect(page.locator("#chat")).to_contain_text("<b style=")
    # the model's own **bold** is shown as emphasis, not as asterisks
    expect(page.locator("#chat strong").filter(has_text="Check the INR.")).to_be_visible()
    expect(page.locator("#chat")).not_to_contain_text("**Check")

    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-question textarea").fill("Where are warfarin INR results posted?")
    page.locator("#cmp-ask").click()
    expect(page.locator("#cmp-status")).to_contain_text("Both answers are in", timeout=180_000)
    expect(page.locator("#cmp-left")).to_contain_text("SPOOFED HEADER")
    expect(page.locator("#cmp-left strong").filter(has_text="Check the INR.")).to_be_visible()
    page.get_by_text("Sources cited by A").click()
    page.get_by_text("Sources cited by B").click()
    page.wait_for_timeout(1000)

    live = page.evaluate(
        """(origin) => ({
            images: [...document.querySelectorAll('img')].filter(i => i.src.startsWith(origin)).length,
            links: [...document.querySelectorAll('a')].filter(a => a.href.startsWith(origin)).length,
            fixed: [...document.querySelectorAll('b, strong, span, div')].filter(
                e => e.textContent.includes('SPOOFED') && getComputedStyle(e).position === 'fixed').length,
        })""",
        origin,
    )
    assert live == {"images": 0, "links": 0, "fixed": 0}
    assert not [u for u in requested if u.startswith(origin)]
    _, hits = origin, Trap.hits
    assert hits == []  # the tracker never heard from the browser


@pytest.fixture(autouse=True, scope="module")
def _no_leftover_profiles():
    yield
    shutil.rmtree(REPO / "test-artifacts" / "chromium-profile", ignore_errors=True)


# -- Stop with the real bundled model ----------------------------------------------------------


@pytest.fixture
def real_model_app(few_index, settings, tmp_path):
    from chatbot.ui.app import build_app

    settings.generation.max_new_tokens = 96
    store = PreferenceStore(f"sqlite:///{tmp_path / 'prefs.sqlite3'}")
    users = accounts()
    app = build_app(Chain(settings), store=store, users=users)  # the bundled 4-bit SmolLM2 via llama.cpp
    url = launch_local(app, users)
    try:
        yield url, store
    finally:
        app.close()
        store.close()


@pytest.mark.slow
def test_stop_mid_answer_then_ask_again_answers_and_others_are_not_blocked(real_model_app, browser):
    """#13.1: Stop after the first words used to leave the model locked for every user until a restart."""
    from playwright.sync_api import expect

    url, _store = real_model_app
    page = login(browser, url, "dr_ada")
    question = "How is type 2 diabetes diagnosed and what are the HbA1c thresholds?"
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()
    page.wait_for_function(  # the first words of the answer are on screen
        "(q) => { const t = document.querySelector('#chat').innerText; return t.length > q.length + 40; }",
        arg=question,
        timeout=180_000,
    )
    page.locator("#stop").click()
    expect(page.locator("#ask")).to_be_enabled()

    # another user's Compare still gets both answers
    other = login(browser, url, "nurse_bo")
    other.get_by_role("tab", name="Compare").click()
    other.locator("#cmp-question textarea").fill("What are the symptoms of asthma?")
    other.locator("#cmp-ask").click()
    expect(other.locator("#cmp-status")).to_contain_text("Both answers are in", timeout=240_000)
    assert (
        other.locator("#cmp-left").inner_text().strip() and other.locator("#cmp-right").inner_text().strip()
    )

    # and the user who pressed Stop gets the next answer
    page.locator("#question textarea").fill("What is a normal INR on warfarin?")
    page.locator("#ask").click()
    expect(page.locator("#sources")).to_contain_text("warfarin", timeout=240_000)
    expect(page.locator("#ask")).to_be_enabled(timeout=240_000)
    expect(page.locator("#chat")).to_contain_text("not medical advice")


class SlowWhenToldEngine(WordyEngine):
    """Wordy replies, written slowly (as the bundled model on a busy machine) once `slow` is set."""

    slow = False

    def stream(self, messages, params):
        for piece in super().stream(messages, params):
            if self.slow:
                time.sleep(0.1)
            yield piece


def test_a_pair_left_while_it_is_written_never_comes_back_over_the_next_one(
    few_index, settings, embedder, tmp_path, browser
):
    """Ask both, then Next before the answers are done: the queued pair stays, with Submit open.

    The free-typed pair keeps being written on the server for many seconds; before the fix its
    stream went on updating the page, so the queued pair was replaced by half-written answers to
    the other question and Submit stayed closed until that generation ended (on the bundled model
    under load: minutes)."""
    from playwright.sync_api import expect

    engine = SlowWhenToldEngine()

    def prepared(app) -> None:
        app.medchat_compare.prepare(10)
        engine.slow = True  # every answer from now on takes about 10 s

    with running_app(
        settings,
        embedder,
        tmp_path,
        engine,
        ["What INR should I aim for on warfarin?"],
        before_launch=prepared,
    ) as (url, store, _app):
        page = login(browser, url, "nurse_bo")
        page.get_by_role("tab", name="Compare").click()
        page.locator("#cmp-question textarea").fill("How is asthma treated in adults?")
        page.locator("#cmp-ask").click()
        expect(page.locator("#cmp-left")).to_contain_text("INR", timeout=30_000)  # A is being written
        # Next is open while a pair is written, and shows the queued pair at once (the free-typed
        # one needs about 20 s more; before the fix Next stayed closed until it was done)
        page.locator("#cmp-next").click(timeout=5_000)
        expect(page.locator("#cmp-question textarea")).to_have_value(
            "What INR should I aim for on warfarin?", timeout=10_000
        )
        expect(page.locator("#cmp-status")).to_contain_text("Both answers are in", timeout=10_000)
        queued = store.pending_round("nurse_bo")
        assert queued is not None and queued.question == "What INR should I aim for on warfarin?"
        # for longer than the abandoned pair takes to finish, what is on screen stays the queued pair
        for _ in range(12):
            page.wait_for_timeout(1000)
            expect(page.locator("#cmp-question textarea")).to_have_value(
                "What INR should I aim for on warfarin?", timeout=1
            )
            expect(page.locator("#cmp-status")).to_contain_text("Both answers are in", timeout=1)
            expect(page.locator("#cmp-submit")).to_be_enabled(timeout=1)
        page.keyboard.press("1")
        page.locator("#cmp-strength").get_by_text("Slightly better").click()
        page.locator("#cmp-safety").get_by_text("Both safe").click()
        page.keyboard.press("Control+Enter")
        expect(page.locator("#cmp-reveal")).to_contain_text("Saved")
        (j,) = store.judgments()
        assert j.comparison_id == queued.comparison_id
        # the abandoned free-typed pair was not stored as a pending round of this annotator
        assert store.pending_round("nurse_bo") is None


class LateFirstWordEngine(WordyEngine):
    """Wordy replies whose first word comes `late` s after the call (as when the model is busy with
    someone else), once `late` is set."""

    late = 0.0

    def stream(self, messages, params):
        if self.late:
            time.sleep(self.late)
        yield from super().stream(messages, params)


def test_a_pair_left_before_its_first_word_does_not_blank_the_next_one(
    few_index, settings, embedder, tmp_path, browser
):
    """Ask both, then Next at once: the free-typed pair is left before it has shown anything.

    When its first word came (here 6 s later; with the bundled model busy, any time) that pair
    stopped without having sent the page anything, and Gradio then emptied every output of its
    event: the queued pair on screen lost its answers, question and status (seen walking the page:
    a blank status under a pair, or "Error" badges on every box)."""
    from playwright.sync_api import expect

    engine = LateFirstWordEngine()
    queued_q = "What INR should I aim for on warfarin?"

    def prepared(app) -> None:
        app.medchat_compare.prepare(10)
        engine.late = 6.0

    with running_app(settings, embedder, tmp_path, engine, [queued_q], before_launch=prepared) as (
        url,
        _store,
        _app,
    ):
        page = login(browser, url, "nurse_bo")
        page.get_by_role("tab", name="Compare").click()
        page.locator("#cmp-question textarea").fill("How is asthma treated in adults?")
        page.locator("#cmp-ask").click()
        expect(page.locator("#cmp-status")).to_contain_text("being written")
        page.locator("#cmp-next").click(timeout=5_000)
        expect(page.locator("#cmp-question textarea")).to_have_value(queued_q, timeout=10_000)
        expect(page.locator("#cmp-status")).to_contain_text("Both answers are in", timeout=10_000)
        left = page.locator("#cmp-left").inner_text()
        assert "INR" in left
        for _ in range(10):  # past the moment the left pair's first word arrives
            page.wait_for_timeout(1000)
            expect(page.locator("#cmp-question textarea")).to_have_value(queued_q, timeout=1)
            expect(page.locator("#cmp-status")).to_contain_text("Both answers are in", timeout=1)
            expect(page.locator("#cmp-left")).to_have_text(left, timeout=1)
            expect(page.locator("#cmp-submit")).to_be_enabled(timeout=1)
        expect(page.get_by_text("Error", exact=True)).to_have_count(0)
        (REPO / "test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "test-artifacts" / "compare-left-before-first-word.png"))


def test_a_pair_left_mid_answer_ends_on_no_change_so_its_ended_message_cannot_repaint(
    few_index, settings, embedder, tmp_path
):
    """Gradio's "event ended" message carries the event's last update again. A pair left for Next
    while its answers were written ended on its last half-written update, so that message, when it
    reached the page after Next's pair, put the left pair back ("Answers are being written…" under
    half an answer, Submit closed; seen walking the real server). Driven here through the handlers
    themselves, so the order is not left to chance: the left pair's last update must be no change."""
    import types

    import gradio as gr

    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.retrieval import open_retriever
    from chatbot.ui.app import build_app
    from tests.labelling.test_compare import VARIANTS

    engine = SlowWhenToldEngine()
    store = PreferenceStore(f"sqlite:///{tmp_path / 'prefs.sqlite3'}")
    store.add_queue_items([{"question": "What INR should I aim for on warfarin?"}], batch="t")
    chain = Chain(settings, retriever=open_retriever(settings, embedder), engine=engine)
    app = build_app(chain, store=store, variants=VARIANTS, users=accounts())
    app.medchat_compare.prepare(10)
    engine.slow = True  # the free-typed pair takes seconds: it is left mid-answer
    fns = {f.api_name: f.fn for f in app.fns.values() if f.api_name}
    page = types.SimpleNamespace(username="nurse_bo", session_hash="page-1")
    asked = fns["compare_ask"]("How is asthma treated in adults?", None, page)
    assert "being written" in next(asked)[4]  # status: the free-typed pair is on screen
    nxt = fns["compare_next"](None, page)
    got: list = []
    mover = threading.Thread(target=lambda: got.append(next(nxt)))  # Next waits for the left pair
    mover.start()
    time.sleep(0.5)  # Next now owns the page
    rest = list(asked)  # the left pair's next piece sees it, and the pair ends
    mover.join(timeout=10)
    assert rest and rest[-1] == tuple(gr.skip() for _ in rest[-1])  # its last update: no change
    assert all("Both answers are in" not in str(u[4]) for u in rest)  # it never finished
    assert got and "Both answers are in" in got[0][4]
    assert got[0][8] == "What INR should I aim for on warfarin?"  # Next's pair
    list(nxt)
    store.close()
