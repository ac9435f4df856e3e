"""Issue #31: chat answers through a served model are generated at once, not one after another.

A real simulated model server (bench/sim_model_server.py, 10 tokens a second per stream, any number
of streams) and the real app on 127.0.0.1; two chat users ask at once. Proved by order of events,
not by a clock: with the default for a served engine the second answer's first token reaches its
user before the first answer has finished; with `generation.parallel = 1` it cannot, which shows
the check can fail.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatbot.chain import Chain
from chatbot.labelling.variants import Variant
from chatbot.retrieval import Passage
from chatbot.settings import Settings
from chatbot.ui.auth import Users

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # real servers (a few seconds)


class OnePassage:
    def retrieve(self, question, k=None, filters=None):
        text = "High blood pressure is a reading of 140/90 mmHg or more."
        return [Passage("p1", text, "Blood pressure", "", "/notes/bp.md", 0.9)]


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    cmd = [sys.executable, str(REPO / "bench" / "sim_model_server.py"), "--port", "0"]
    cmd += ["--tokens-per-s", "10", "--ttft-ms", "0", "--max-tokens", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "http://127.0.0.1:" not in line:
            pytest.fail(f"the simulated model server did not start: {line!r}")
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(10)


def _model_requests(sim_url: str) -> list[dict]:
    return list(httpx.get(sim_url.removesuffix("/v1") + "/stats").json()["requests"])


def _answer_order(monkeypatch, sim_url: str, parallel: int | None) -> tuple[list[str], list[dict]]:
    """Two users ask at once: the events each job showed, in the order the polling saw them, and
    the model server's record of the two requests (monotonic times: received, first token, done)."""
    from gradio_client import Client

    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.ui.app import build_app
    from chatbot.ui.serve import launch_options, thread_count

    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "openai")
    monkeypatch.setenv("MEDCHAT_GENERATION__BASE_URL", sim_url)
    monkeypatch.setenv("MEDCHAT_GENERATION__MAX_NEW_TOKENS", "20")
    if parallel is not None:
        monkeypatch.setenv("MEDCHAT_GENERATION__PARALLEL", str(parallel))
    settings = Settings()
    chain = Chain(settings, retriever=OnePassage())
    chain.triage.assess("warm up the classifier")
    store = PreferenceStore(f"sqlite:///{settings.home / 'prefs.sqlite3'}")
    variants = [Variant("a", k=1), Variant("b", k=2)]
    app = build_app(chain, store=store, variants=variants, users=Users({}))
    port = _free_port()
    app.queue(default_concurrency_limit=4).launch(  # as `medchat serve` launches it, without logins
        **launch_options(),
        server_name="127.0.0.1",
        server_port=port,
        max_threads=thread_count(settings),
        prevent_thread_lock=True,
        quiet=True,
    )
    url = f"http://127.0.0.1:{port}/"
    before = len(_model_requests(sim_url))
    try:
        clients = [Client(url, verbose=False) for _ in range(2)]
        jobs = [c.submit("What blood pressure counts as high?", [], api_name="/ask") for c in clients]
        events: list[str] = []
        deadline = time.monotonic() + 120
        while len(events) < 4 and time.monotonic() < deadline:
            for i, job in enumerate(jobs):
                if f"first {i}" not in events and any(_answer_text(o) for o in job.outputs()):
                    events.append(f"first {i}")
                if f"done {i}" not in events and job.done():
                    events.append(f"done {i}")
            time.sleep(0.01)
        for job in jobs:
            assert job.result(timeout=60)[3].startswith("Answered in"), job.result()
        return events, sorted(_model_requests(sim_url)[before:], key=lambda r: r["received"])
    finally:
        app.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answer_text(outputs) -> str:
    history = outputs[1] if len(outputs) > 1 else []
    content = history[-1].get("content") if history else ""
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


def test_two_answers_through_a_served_model_are_written_at_once(monkeypatch, sim_url):
    events, (earlier, later) = _answer_order(monkeypatch, sim_url, parallel=None)
    assert {e for e in events if e.startswith("done")} == {"done 0", "done 1"}, events
    # the model was writing both at once: the later request came in before the earlier one ended
    assert later["received"] < earlier["done"], (earlier, later)
    # and whichever answer finished first, the other's first token had reached its user before that
    first_done = next(e for e in events if e.startswith("done"))
    other = "1" if first_done.endswith("0") else "0"
    assert events.index(f"first {other}") < events.index(first_done), events


def test_with_parallel_one_the_second_answer_waits_for_the_first(monkeypatch, sim_url):
    events, (earlier, later) = _answer_order(monkeypatch, sim_url, parallel=1)
    assert {e for e in events if e.startswith("done")} == {"done 0", "done 1"}, events
    # the app asked the model for the second answer only once the first one's stream had ended
    assert later["received"] >= earlier["done"], (earlier, later)
