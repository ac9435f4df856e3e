"""Retrieval from a real `chroma run` server (`store.mode = server`), as replicas on other machines
do it: the vectors come from the server; BM25 needs the manifest, which stays with the home that
ingested, so a home without it retrieves dense-only until `index/` is copied over."""

from __future__ import annotations

import shutil

import pytest

from chatbot.retrieval import open_retriever
from chatbot.settings import Settings
from ingestion.pipeline import ingest
from tests.ingestion.test_ingest_incremental import HashEmbedder, make_corpus
from tests.ingestion.test_ingest_resume import chroma_server  # noqa: F401 -- a fixture

QUESTION = "Topic 7 condition7 treatment2"


def _replica(home, port: int) -> Settings:
    s = Settings(home=home)
    s.store.mode, s.store.port = "server", port
    return s


@pytest.mark.slow
def test_replicas_retrieve_from_the_chroma_server(chroma_server, tmp_path, caplog):  # noqa: F811
    emb = HashEmbedder()
    ingesting = _replica(tmp_path / "ingest-home", chroma_server)
    report = ingest([make_corpus(tmp_path / "c", n=10)], settings=ingesting, embedder=emb)
    assert report.count("ingested") == 11

    hybrid = open_retriever(ingesting, embedder=emb)
    assert hybrid.lexical is not None
    top = hybrid.retrieve(QUESTION, k=3)
    assert "condition7" in top[0].text

    # a replica's own home: nothing on its disk, the same passages from the server, dense only
    bare = _replica(tmp_path / "replica-home", chroma_server)
    with caplog.at_level("WARNING", logger="chatbot.retrieval"):
        dense = open_retriever(bare, embedder=emb)
    assert (
        f"no manifest at {bare.manifest_path}: retrieving from the Chroma server without BM25" in caplog.text
    )
    assert dense.lexical is None and not bare.chroma_dir.exists() and not bare.index_dir.exists()
    got = dense.retrieve(QUESTION, k=3)
    assert "condition7" in got[0].text and got[0].id == next(p.id for p in top if "condition7" in p.text)

    # with the ingesting home's index/ copied over (docs/deploy.md), the replica fuses BM25 in too
    shutil.copytree(ingesting.index_dir, bare.index_dir)
    copied = open_retriever(bare, embedder=emb)
    assert copied.lexical is not None
    assert [p.id for p in copied.retrieve(QUESTION, k=3)] == [p.id for p in top]
