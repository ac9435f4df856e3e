"""Issue #30, safety under load, sessions and HTTP (items 1-5), each on a real server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine
from chatbot.labelling.store.prefs import PreferenceStore
from chatbot.labelling.variants import Variant
from chatbot.retrieval import Passage
from chatbot.settings import LimitsSettings
from chatbot.ui.auth import ExpiringTokens, User, Users, hash_password
from tests.system.test_labelling_browser import browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow  # real servers

SECRET_VARIANTS = [Variant("blind-variant-alpha", k=2), Variant("blind-variant-beta", k=3)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accounts() -> Users:
    return Users(
        {
            "ann": User("ann", "nurse", hash_password("a-pass", iterations=1000)),
            "root": User("root", "gp", hash_password("r-pass", iterations=1000), admin=True),
        }
    )


class HeldEngine(FakeEngine):
    """Writes its first words, then holds until released; records what happened, in order."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events
        self.release = threading.Event()
        self._lock = threading.Lock()

    def stream(self, messages, params):
        with self._lock:
            self.events.append("generation started")
        yield "A blood pressure under 120/80 is normal "
        self.release.wait(300)
        yield "[1]."
        with self._lock:
            self.events.append("generation finished")

    def started(self) -> int:
        with self._lock:
            return self.events.count("generation started")


class OnePassage:
    def retrieve(self, question, k=None, filters=None):
        text = "A blood pressure under 120/80 is normal."
        return [Passage("p1", text, "Blood pressure", "", "/notes/bp.md", 0.9)]


@contextmanager
def served(app, *, users: Users, limits: LimitsSettings | None = None, proxies=()) -> Iterator[str]:
    """The app launched as `serve` launches it: its middleware (sign-in guard included), its queue."""
    from chatbot.ui.serve import MAX_THREADS, guard_middleware, launch_options, trust_forwarded_from

    limits = limits or LimitsSettings()
    port = _free_port()
    trust_forwarded_from(list(proxies))
    app.queue(default_concurrency_limit=4).launch(
        **launch_options(guard_middleware(limits), limits=limits),
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        auth=users.check if users else None,
        max_threads=MAX_THREADS,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.close()


@pytest.fixture
def store(tmp_path):
    s = PreferenceStore(f"sqlite:///{tmp_path / 'prefs.sqlite3'}")
    yield s
    s.close()


# --- 1. an emergency never waits behind generations ---------------------------------------------


def test_an_emergency_is_answered_while_the_generations_ahead_of_it_are_still_running(settings, store):
    """Six chat users are waiting on the model (four generating, two waiting for a turn); an emergency
    sent after them is answered before any of them finishes. Order of events, not a clock: the
    generations are held until the emergency answer is in (or the test has waited far too long)."""
    from gradio_client import Client

    from chatbot.ui.app import CHAT_GENERATIONS, build_app

    events: list[str] = []
    engine = HeldEngine(events)
    chain = Chain(settings, retriever=OnePassage(), engine=engine)
    chain.triage.assess("warm up the classifier")
    app = build_app(chain, store=store, variants=SECRET_VARIANTS, users=Users({}))
    with served(app, users=Users({})) as url:
        try:
            jobs = [
                Client(url + "/", verbose=False).submit(
                    "What is a normal blood pressure?", [], api_name="/ask"
                )
                for _ in range(CHAT_GENERATIONS + 2)
            ]
            deadline = time.monotonic() + 120
            while engine.started() < CHAT_GENERATIONS and time.monotonic() < deadline:
                time.sleep(0.05)
            assert engine.started() == CHAT_GENERATIONS, events
            emergency = Client(url + "/", verbose=False).submit(
                "My father has crushing chest pain and can't breathe", [], api_name="/ask"
            )
            _, history, _, status = emergency.result(timeout=120)
            events.append("emergency answered")
        finally:
            engine.release.set()
        for job in jobs:
            job.result(timeout=120)
    reply = str(history[-1]["content"])
    assert "EMERGENCY" in reply and "112" in reply and status.startswith("Emergency guidance shown")
    first_finished = events.index("generation finished")
    assert events.index("emergency answered") < first_finished, events
    assert events.count("generation finished") == CHAT_GENERATIONS + 2  # and then everyone was answered


# --- 2. sessions that expired --------------------------------------------------------------------


def test_the_session_table_lists_live_sessions_only():
    now = [0.0]
    tokens = ExpiringTokens(10, clock=lambda: now[0])
    tokens["old"] = "ann"
    now[0] = 5
    tokens["new"] = "ann"
    now[0] = 11
    assert list(tokens.keys()) == ["new"] and list(tokens) == ["new"] and len(tokens) == 1
    assert dict(tokens.items()) == {"new": "ann"} and list(tokens.values()) == ["ann"]
    # what Gradio's /logout does with the table
    for token in list(tokens.keys()):
        if tokens[token] == "ann":
            del tokens[token]
    assert len(tokens) == 0


def test_logout_after_an_expired_session_and_config_with_an_expired_token(store, settings):
    import gradio as gr

    with gr.Blocks() as app:
        gr.Markdown("hello")
    users = _accounts()
    with served(app, users=users, limits=LimitsSettings(session_hours=1.0 / 3600)) as url:
        expired, fresh = httpx.Client(base_url=url), httpx.Client(base_url=url)
        with expired, fresh:
            assert expired.post("/login", data={"username": "ann", "password": "a-pass"}).status_code == 200
            assert expired.get("/config").status_code == 200
            time.sleep(1.5)
            assert fresh.post("/login", data={"username": "ann", "password": "a-pass"}).status_code == 200
            # signing out walks every session of the user, the expired one still in the table among them
            assert fresh.get("/logout", follow_redirects=False).status_code == 302
            assert fresh.get("/config").status_code == 401  # signed out
            for route in ("/config", "/gradio_api/info"):
                assert expired.get(route).status_code == 401, route
            assert expired.get("/logout", follow_redirects=False).status_code == 302


# --- 3. request bodies ---------------------------------------------------------------------------


def test_oversized_bodies_are_refused_before_parsing_and_never_logged(store, settings, capfd):
    from chatbot.ui.app import build_app

    app = build_app(
        Chain(settings, engine=FakeEngine()), store=store, variants=SECRET_VARIANTS, users=_accounts()
    )
    limits = LimitsSettings()
    with served(app, users=_accounts(), limits=limits) as url, httpx.Client(base_url=url, timeout=120) as c:
        assert c.post("/login", data={"username": "root", "password": "r-pass"}).status_code == 200
        capfd.readouterr()
        # a 100 MB value in a vote
        radios = ["Better", "A is unsafe", None, False, "", "none", "", [], "", "none", "", [], "why", False]
        form = ["cid", "x" * 100_000_000, *radios]
        vote = c.post("/gradio_api/call/vote", json={"data": form})
        assert vote.status_code == 413 and "MEDCHAT_LIMITS__REQUEST_KB" in vote.json()["detail"]
        # a 14 MB conversation
        history = [
            {"role": "user", "content": "y" * 1000},
            {"role": "assistant", "content": "z" * 1000},
        ] * 7000
        ask = c.post(
            "/gradio_api/call/ask", json={"data": ["What is asthma?", history, "settings default", 4, 0.2]}
        )
        assert ask.status_code == 413
        # a body sent without its length is cut off as it passes the limit
        chunks = (b"x" * 1_000_000 for _ in range(20))
        sent = c.post("/gradio_api/call/ask", content=chunks, headers={"content-type": "application/json"})
        assert sent.status_code == 413
        # under the limit, a value no radio offers is refused, and the log holds a short prefix of it
        form[1] = "x" * 300_000
        job = c.post("/gradio_api/call/vote", json={"data": form})
        assert job.status_code == 200
        c.get(f"/gradio_api/call/vote/{job.json()['event_id']}").read()
        # a normal question still goes through
        fine = c.post(
            "/gradio_api/call/ask", json={"data": ["What is asthma?", [], "settings default", 4, 0.2]}
        )
        assert fine.status_code == 200
    err = capfd.readouterr().err
    assert "x" * 1000 not in err and "y" * 1000 not in err, err[:500]
    assert len(err) < 50_000


# --- 4. X-Forwarded-For --------------------------------------------------------------------------


def _sign_ins(url: str, n: int) -> list[int]:
    """n wrong passwords, each under another name and claiming another forwarded address."""
    with httpx.Client(base_url=url) as c:
        return [
            c.post(
                "/login",
                data={"username": f"guess{i}", "password": "wrong"},
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
            ).status_code
            for i in range(n)
        ]


def test_x_forwarded_for_is_not_believed_from_an_untrusted_peer():
    import gradio as gr

    with gr.Blocks() as app:
        gr.Markdown("hello")
    limits = LimitsSettings(login_failures=3)
    with served(app, users=_accounts(), limits=limits) as url:  # trusted proxies: none (the default)
        codes = _sign_ins(url, 5)
    assert codes[:3] == [400] * 3 and codes[3:] == [429, 429], codes


def test_x_forwarded_for_is_believed_from_a_proxy_named_in_the_settings():
    import gradio as gr

    from chatbot.settings import Settings

    assert Settings().ui.trusted_proxies == []  # the default trusts no one
    with gr.Blocks() as app:
        gr.Markdown("hello")
    limits = LimitsSettings(login_failures=3)
    with served(app, users=_accounts(), limits=limits, proxies=["127.0.0.1"]) as url:
        codes = _sign_ins(url, 5)
    assert codes == [400] * 5, codes  # five clients behind the proxy, one failure each


# --- 5. blind comparison -------------------------------------------------------------------------


def test_config_does_not_name_the_variants_to_annotators(store, settings):
    from chatbot.ui.app import build_app

    app = build_app(
        Chain(settings, engine=FakeEngine()), store=store, variants=SECRET_VARIANTS, users=_accounts()
    )
    with served(app, users=_accounts()) as url, httpx.Client(base_url=url) as c:
        assert c.post("/login", data={"username": "ann", "password": "a-pass"}).status_code == 200
        config = c.get("/config")
        assert config.status_code == 200
        info = c.get("/gradio_api/info")
    for text in (config.text, info.text):
        assert "blind-variant" not in text


def test_an_admin_still_picks_a_variant_in_the_browser(store, settings, browser):  # noqa: F811
    """The names left the page's config; an admin gets them on load and can answer with one."""
    from playwright.sync_api import expect

    from chatbot.ui.app import build_app
    from tests.system.test_labelling_browser import SCREEN

    users = _accounts()
    chain = Chain(settings, retriever=OnePassage(), engine=FakeEngine())
    app = build_app(chain, store=store, variants=SECRET_VARIANTS, users=users)
    with served(app, users=users) as url:
        page = browser.new_context(viewport=SCREEN).new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.get_by_label("username").fill("root")
        page.get_by_label("password").fill("r-pass")
        page.get_by_role("button", name="Login").click()
        page.get_by_role("tab", name="Chat").wait_for()
        page.get_by_text("Answer settings").click()
        picker = page.locator("#chat-variant")
        expect(picker).to_be_visible(timeout=60_000)
        picker.locator("input").click()
        page.get_by_role("option", name="blind-variant-beta").click()
        page.locator("#question textarea").fill("What is a normal blood pressure?")
        page.locator("#ask").click()
        expect(page.locator("#chat-status")).to_contain_text("Answered in", timeout=90_000)
        expect(page.locator("#chat")).to_contain_text("120/80")
