"""Ingesting gives back Chroma's files: a long-lived process (the app, a fuzzing campaign, a test run)
that ingests many times must not run out of file handles (issue #30: "unable to open database file"
after about 2,270 ingests in one process)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatbot.settings import Settings
from ingestion.pipeline import ingest
from tests.ingestion.test_ingest_incremental import HashEmbedder

FD_DIR = Path("/proc/self/fd")


@pytest.mark.skipif(not FD_DIR.is_dir(), reason="counts open files through /proc")
def test_repeated_ingests_into_new_homes_do_not_keep_files_open(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("# Asthma\n\nAsthma narrows the airways. Inhalers relieve it.\n")

    def once(n: int) -> None:
        monkeypatch.setenv("MEDCHAT_HOME", str(tmp_path / f"home{n}"))
        report = ingest([docs], settings=Settings(), embedder=HashEmbedder())
        assert report.total_chunks >= 1

    once(0)  # the first one loads what stays loaded for the process (libraries, thread pools)
    before = len(os.listdir(FD_DIR))
    for n in range(1, 16):
        once(n)
    after = len(os.listdir(FD_DIR))
    # each embedded Chroma index held several files (its sqlite database, journal and segments);
    # 15 ingests kept 15 of them open before the index was closed
    assert after - before < 5, f"{after - before} more open files after 15 ingests"
