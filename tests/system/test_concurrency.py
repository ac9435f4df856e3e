"""Twenty annotators at once against a real `medchat serve` (fake engine, small real index):
200 judgments -> exactly 200 rows; SIGKILL loses no acknowledged judgment; a new session
(a page refresh) gets back the comparison that was not yet judged."""

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chatbot.ui.auth import hash_password

ANNOTATORS = 20
PER_ANNOTATOR = 10
VOTE = ("A is better", "Better", "Both safe", None, False, "", "none", "", [], "", "none", "", [], "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("server did not start in time")


def _count(db) -> tuple[int, int, dict[str, int]]:
    con = sqlite3.connect(db)
    try:
        total = con.execute("SELECT count(*) FROM judgments WHERE status = 'submitted'").fetchone()[0]
        distinct = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT comparison_id, annotator FROM judgments"
            " WHERE status = 'submitted')"
        ).fetchone()[0]
        per = dict(
            con.execute(
                "SELECT annotator, count(*) FROM judgments WHERE status='submitted' GROUP BY annotator"
            )
        )
    finally:
        con.close()
    return total, distinct, per


T0 = time.perf_counter()


@pytest.fixture
def server(few_index, medchat_home, tmp_path):
    users = {
        f"ann{i:02d}": {"role": "clinician", "password": hash_password(f"pw{i}", iterations=1000)}
        for i in range(ANNOTATORS)
    }
    import yaml

    (medchat_home / "users.yaml").write_text(yaml.safe_dump({"users": users}))
    global T0
    T0 = time.perf_counter()
    port = _free_port()
    env = {
        **os.environ,
        "MEDCHAT_HOME": str(medchat_home),
        "MEDCHAT_GENERATION__ENGINE": "fake",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 -- closed after the server stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatbot.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, proc)
        yield url, proc, medchat_home / "prefs.sqlite3"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        log.close()


def test_twenty_annotators_two_hundred_judgments_then_sigkill(server):
    from gradio_client import Client

    url, proc, db = server
    print(f"server up after {time.perf_counter() - T0:.1f} s")
    acked: dict[str, int] = {}
    lock = threading.Lock()

    def annotate(i: int, rounds: int, stop: threading.Event | None = None) -> None:
        name = f"ann{i:02d}"
        client = Client(url, auth=(name, f"pw{i}"), verbose=False)
        for n in range(rounds):
            if stop is not None and stop.is_set():
                return
            left, right, status, *_sources = client.predict(
                f"What INR is normal on warfarin? ({name} {n})", api_name="/compare_ask"
            )
            assert left and right and "Both answers are in" in status
            reveal = client.predict(*VOTE, api_name="/vote")
            assert reveal.startswith("✅ Saved")
            with lock:
                acked[name] = acked.get(name, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(ANNOTATORS) as pool:
        for f in [pool.submit(annotate, i, PER_ANNOTATOR) for i in range(ANNOTATORS)]:
            f.result()
    elapsed = time.perf_counter() - started
    print(f"{ANNOTATORS * PER_ANNOTATOR} judgments from {ANNOTATORS} annotators in {elapsed:.1f} s")
    assert sum(acked.values()) == ANNOTATORS * PER_ANNOTATOR
    total, distinct, per = _count(db)
    assert total == distinct == ANNOTATORS * PER_ANNOTATOR
    assert per == acked

    # a page refresh mid-comparison: a new session for the same user gets the unjudged pair back
    client = Client(url, auth=("ann00", "pw0"), verbose=False)
    left, right, *_ = client.predict("What is a normal INR?", api_name="/compare_ask")
    fresh = Client(url, auth=("ann00", "pw0"), verbose=False)
    back = fresh.predict(api_name="/compare_resume")
    assert (back[0], back[1]) == (left, right), (back[:2], left, right)
    assert any("10 judgment(s) saved" in str(b) for b in back)  # the greeting
    assert fresh.predict(*VOTE, api_name="/vote").startswith("✅ Saved")
    acked["ann00"] += 1

    # SIGKILL while a second wave is voting: every acknowledged judgment must survive
    stop = threading.Event()
    with ThreadPoolExecutor(ANNOTATORS) as pool:
        futures = [pool.submit(annotate, i, 1000, stop) for i in range(ANNOTATORS)]
        target = sum(acked.values()) + 5  # kill once a few more votes are acknowledged, with more in flight
        deadline = time.time() + 300
        while sum(acked.values()) < target and time.time() < deadline:
            time.sleep(0.05)
        with lock:
            snapshot = dict(acked)
            os.kill(proc.pid, signal.SIGKILL)
        stop.set()
        for f in futures:
            with contextlib.suppress(Exception):  # the server is gone: calls in flight fail
                f.result(timeout=60)
    proc.wait(timeout=30)
    assert sum(snapshot.values()) >= ANNOTATORS * PER_ANNOTATOR + 1
    total, distinct, per = _count(db)
    assert total == distinct
    for name, n in snapshot.items():
        assert per.get(name, 0) >= n, f"{name}: {n} acknowledged, {per.get(name, 0)} stored"
