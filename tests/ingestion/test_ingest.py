"""Ingestion into a real embedded Chroma under a temp MEDCHAT_HOME, with the real embedder."""

import pytest

from chatbot.errors import IndexMismatchError, IndexMissingError
from chatbot.retrieval import open_retriever
from ingestion.index import ChromaIndex, IndexSpec
from ingestion.pipeline import ingest
from tests.conftest import FEW_NOTES


def test_ingest_reports_and_indexes_every_note(few_index, settings):
    assert few_index.files_seen == len(FEW_NOTES)
    assert few_index.chunks_added == few_index.total_chunks > len(FEW_NOTES)
    assert settings.chroma_dir.is_dir()


def test_reingesting_unchanged_files_adds_nothing(few_index, few_notes, settings, embedder):
    again = ingest([few_notes], settings=settings, embedder=embedder)
    assert again.count("unchanged") == len(FEW_NOTES)
    assert (again.chunks_added, again.chunks_removed) == (0, 0)
    assert again.total_chunks == few_index.total_chunks


def test_a_changed_file_replaces_its_chunks(few_index, few_notes, settings, embedder):
    note = few_notes / "migraine.md"
    note.write_text(note.read_text() + "\n## Extra\nA brand new paragraph about migraine diaries.\n")
    again = ingest([few_notes], settings=settings, embedder=embedder)
    assert again.count("ingested") == 1 and again.count("unchanged") == len(FEW_NOTES) - 1
    assert again.chunks_added >= 1
    retriever = open_retriever(settings, embedder)
    hits = retriever.retrieve("keeping a migraine diary", k=3)
    assert any("migraine diaries" in h.text for h in hits)
    assert again.total_chunks == few_index.total_chunks + again.chunks_added - again.chunks_removed


def test_bad_files_are_reported_and_the_rest_goes_on(tmp_path, settings, embedder):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# Iron\n\nIron tablets treat iron-deficiency anaemia.\n")
    (folder / "empty.md").write_text("")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02")
    (folder / "ignored.png").write_bytes(b"\x89PNG")
    report = ingest([folder, tmp_path / "missing"], settings=settings, embedder=embedder)
    status = {f.path.rsplit("/", 1)[-1]: (f.status, f.reason) for f in report.files}
    assert status["good.md"][0] == "ingested"
    assert status["empty.md"][0] == "failed" and "empty" in status["empty.md"][1]
    assert status["binary.txt"][0] == "failed" and "NUL" in status["binary.txt"][1]
    assert status["missing"] == ("failed", "no such file or folder")
    assert "ignored.png" not in status
    assert report.total_chunks == 1


def test_retrieval_finds_the_right_note(few_index, settings, embedder):
    hits = open_retriever(settings, embedder).retrieve("What is the target INR for warfarin?")
    assert hits[0].source.endswith("warfarin.md")
    assert hits == sorted(hits, key=lambda h: -h.fused)
    assert 0 < hits[0].score <= 1


def test_asking_before_ingesting_says_what_to_do(settings):
    with pytest.raises(IndexMissingError, match="medchat ingest"):
        open_retriever(settings)


def test_an_index_built_with_another_embedder_is_refused(few_index, settings):
    other = IndexSpec(
        "some/other-model", 384, settings.ingestion.chunk_tokens, settings.ingestion.chunk_overlap_tokens
    )
    with pytest.raises(IndexMismatchError, match="some/other-model"):
        ChromaIndex.open(settings.chroma_dir, settings.store.collection, other)


def test_an_index_built_with_other_chunking_is_refused(few_index, settings, embedder):
    settings.ingestion.chunk_tokens = 128
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        open_retriever(settings, embedder)
    report = ingest([], settings=settings, embedder=embedder, rebuild=True)
    assert report.total_chunks == 0
