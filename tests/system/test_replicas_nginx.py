"""Two real `medchat serve` replicas behind a real nginx (rendered by `medchat proxy-config`), one
judgments database (PostgreSQL when it can be started here, else one SQLite file) and one `chroma
run` server, all on 127.0.0.1 and started by the test; the fake engine answers.

Asserts: the page loads through the proxy; a session stays on one replica (the cookie nginx sets),
so an annotator signs in and votes through the proxy;
new visitors are spread over both; a vote made through the proxy is visible from the other replica;
when a session's replica stops, its requests go to the other one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from chatbot.ui.auth import hash_password
from ingestion.pipeline import ingest
from tests.conftest import REPO
from tests.ingestion.test_ingest_resume import chroma_server  # noqa: F401 -- a fixture
from tests.servers import free_port, nginx, nginx_binary, postgres, server_folder, wait_listening

VOTE = ("A is better", "Better", "Both safe", None, False, "", "none", "", [], "", "none", "", [], "")


@pytest.fixture
def judgments_url(tmp_path) -> Iterator[str]:
    """A PostgreSQL database when one can be started here, else one SQLite file both replicas share."""
    try:
        with postgres() as pg:
            yield pg.create_database()
            return
    except pytest.skip.Exception as why:
        print(f"judgments in SQLite: {why}")
    yield f"sqlite:///{tmp_path / 'shared-prefs.sqlite3'}"


@contextlib.contextmanager
def replica(home: Path, port: int, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatbot.cli", "serve", "--port", str(port)],
            env={**env, "MEDCHAT_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _served_by(response: httpx.Response) -> str:
    return response.headers.get("x-medchat-replica", "")


def test_two_replicas_behind_nginx_share_one_database(
    chroma_server,  # noqa: F811
    judgments_url,
    settings,
    few_notes,
    embedder,
    tmp_path,
):
    nginx_binary()  # skips, saying so, where nginx is not installed
    # the index: vectors in the chroma server, the manifest and BM25 arrays copied to each replica
    settings.store.mode, settings.store.port = "server", chroma_server
    assert ingest([few_notes], settings=settings, embedder=embedder).count("ingested") == 5
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "MEDCHAT_GENERATION__ENGINE": "fake",
        "MEDCHAT_STORE__MODE": "server",
        "MEDCHAT_STORE__PORT": str(chroma_server),
        "MEDCHAT_PREFS__DB_URL": judgments_url,
        "MEDCHAT_UI__TRUSTED_PROXIES": '["127.0.0.1"]',
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    ports = [free_port(), free_port()]
    homes = [tmp_path / "replica-0", tmp_path / "replica-1"]
    users = {"users": {"ann": {"role": "clinician", "password": hash_password("pw", iterations=1000)}}}
    for home in homes:  # the same accounts on every replica; a login lives in the replica that made it
        shutil.copytree(settings.index_dir, home / "index")
        (home / "users.yaml").write_text(yaml.safe_dump(users))
        (home / "users.yaml").chmod(0o600)
    listen = free_port()
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(replica(home, port, env, tmp_path / f"replica-{i}.log"))
            for i, (home, port) in enumerate(zip(homes, ports, strict=True))
        ]
        state = stack.enter_context(server_folder("medchat-nginx-"))
        replicas = [arg for port in ports for arg in ("--replica", f"127.0.0.1:{port}")]
        command = [sys.executable, "-m", "chatbot.cli", "proxy-config", "--listen", f"127.0.0.1:{listen}"]
        rendered = subprocess.run(
            [*command, *replicas, "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rendered.returncode == 0, rendered.stderr
        for i, (proc, port) in enumerate(zip(procs, ports, strict=True)):
            wait_listening(port, proc, tmp_path / f"replica-{i}.log", f"replica {i}", timeout=300)
        stack.enter_context(nginx(rendered.stdout, state, listen))
        proxy = f"http://127.0.0.1:{listen}"

        # the page loads through the proxy, and says which replica answered
        page = httpx.get(f"{proxy}/", timeout=60)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert _served_by(page) in ("r0", "r1")
        assert page.cookies.get("medchat_replica") == _served_by(page)

        # new visitors are spread over both replicas; a visitor's requests all reach one
        firsts = [_served_by(httpx.get(f"{proxy}/", timeout=60)) for _ in range(4)]
        assert set(firsts) == {"r0", "r1"}, firsts
        for pinned in ("r0", "r1"):
            with httpx.Client(base_url=proxy, cookies={"medchat_replica": pinned}, timeout=60) as c:
                assert {_served_by(c.get(path)) for path in ["/", "/config"] * 5} == {pinned}
        with httpx.Client(base_url=proxy, timeout=60) as visitor:
            seen = {_served_by(visitor.get(path)) for path in ["/", "/config", "/", "/config"] * 3}
        assert len(seen) == 1, seen

        # a sign-in, a Compare round and a vote through the proxy, in one Gradio session: the login
        # token, the queue and the session's state live in one replica, so each request must reach it
        from gradio_client import Client

        through = Client(f"{proxy}/", auth=("ann", "pw"), verbose=False)
        home_replica = through.cookies.get("medchat_replica")
        assert home_replica in ("r0", "r1")
        left, right, status, *_ = through.predict("What INR is normal on warfarin?", api_name="/compare_ask")
        assert left and right and "Both answers are in" in status
        assert through.predict(*VOTE, api_name="/vote").startswith("✅ Saved")

        # the other replica reads the same database: its greeting counts the vote
        other = 1 - int(home_replica[1])
        direct = Client(f"http://127.0.0.1:{ports[other]}/", auth=("ann", "pw"), verbose=False)
        greeting = direct.predict(api_name="/compare_resume")
        assert any("1 judgment(s) saved" in str(part) for part in greeting), greeting
        engine = create_engine(judgments_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT annotator, choice FROM judgments WHERE status='submitted'"))
            assert [tuple(r) for r in rows] == [("ann", "A")]
        engine.dispose()

        # the session's replica stops: its requests go to the other one, and the cookie follows
        procs[int(home_replica[1])].terminate()
        procs[int(home_replica[1])].wait(timeout=30)
        with httpx.Client(base_url=proxy, cookies={"medchat_replica": home_replica}, timeout=60) as c:
            t0 = time.monotonic()
            after = c.get("/")
            assert after.status_code == 200 and _served_by(after) == f"r{other}"
            assert after.cookies.get("medchat_replica") == f"r{other}"
            assert time.monotonic() - t0 < 10
