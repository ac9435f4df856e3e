"""A real `medchat ingest` killed with SIGKILL mid-run, then rerun, ends like a clean run;
and ingestion into a real Chroma server started by the test."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingestion.index import IndexSpec, open_index
from ingestion.lexical import LexicalIndex
from ingestion.pipeline import ingest
from tests.ingestion.test_ingest_incremental import HashEmbedder, make_corpus

BIN = Path(sys.executable).parent
SMALL = {"MEDCHAT_INGESTION__CHUNK_TOKENS": "64", "MEDCHAT_INGESTION__CHUNK_OVERLAP_TOKENS": "8"}


def _ids(settings, embedder) -> tuple[set[str], set[str]]:
    spec = IndexSpec.of(embedder, settings.ingestion)
    chroma = open_index(settings, spec).all_ids()
    lexical = LexicalIndex.open(settings, spec)
    lexical.sync()
    return chroma, set(json.loads((lexical.folder / "ids.json").read_text()))


def _files_done(manifest: Path) -> int:
    if not manifest.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{manifest}?mode=ro", uri=True, timeout=0.2)
        try:
            return int(db.execute("SELECT count(*) FROM files").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_equals_a_clean_run(tmp_path, monkeypatch, embedder):
    corpus = make_corpus(tmp_path / "corpus", n=40)
    home = tmp_path / "killed-home"
    env = dict(os.environ, MEDCHAT_HOME=str(home), MEDCHAT_INGESTION__BATCH_SIZE="4", **SMALL)
    cmd = [str(BIN / "medchat"), "ingest", "--json", str(corpus)]
    monkeypatch.setenv("MEDCHAT_HOME", str(home))
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    from chatbot.settings import Settings

    manifest = Settings().manifest_path
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while _files_done(manifest) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done_when_killed = _files_done(manifest)
    assert 3 <= done_when_killed < 41

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["files_unchanged"] >= 3 and report["files_ingested"] >= 1
    assert report["files_unchanged"] + report["files_ingested"] == 41
    killed = _ids(Settings(), embedder)

    monkeypatch.setenv("MEDCHAT_HOME", str(tmp_path / "clean-home"))
    clean_settings = Settings()
    clean = ingest([corpus], settings=clean_settings, embedder=embedder)
    assert killed == _ids(clean_settings, embedder)
    assert killed[0] == killed[1] and len(killed[0]) == clean.total_chunks == report["total_chunks"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path):
    port = _free_port()
    log = (tmp_path / "chroma.log").open("w")
    data = str(tmp_path / "server-data")
    proc = subprocess.Popen(
        [str(BIN / "chroma"), "run", "--path", data, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited: {(tmp_path / 'chroma.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("chroma run did not start listening in 60 s")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_ingest_into_a_chroma_server(chroma_server, settings, tmp_path):
    settings.store.mode = "server"
    settings.store.port = chroma_server
    corpus = make_corpus(tmp_path / "c", n=4)
    emb = HashEmbedder()
    first = ingest([corpus], settings=settings, embedder=emb)
    assert first.count("ingested") == 5 and first.total_chunks > 5
    assert not settings.chroma_dir.exists()  # nothing embedded on disk: it all went to the server
    chroma, bm25 = _ids(settings, emb)
    assert chroma == bm25 and len(chroma) == first.total_chunks
    spec = IndexSpec.of(emb, settings.ingestion)
    hits = open_index(settings, spec).query(emb.embed_query("Topic 2 condition2 treatment1"), 3)
    assert hits and "condition2" in hits[0].text
    again = ingest([corpus], settings=settings, embedder=emb)
    assert again.count("unchanged") == 5 and again.chunks_added == 0


def test_a_missing_chroma_server_is_a_clear_error(settings, tmp_path):
    from chatbot.errors import IndexMissingError

    settings.store.mode = "server"
    settings.store.port = _free_port()
    with pytest.raises(IndexMissingError, match="chroma run"):
        ingest([make_corpus(tmp_path / "c", n=1)], settings=settings, embedder=HashEmbedder())
