"""Incremental, resumable ingestion into Chroma + BM25, with a cheap deterministic embedder."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest

from chatbot.errors import IndexMismatchError
from ingestion.index import IndexSpec, open_index
from ingestion.lexical import LexicalIndex
from ingestion.pipeline import ingest, lexical_index


class HashEmbedder:
    """Bag-of-words vectors from hashed words: deterministic, instant, good enough to rank."""

    id = "test/hash-embedder"
    dim = 64

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.embedded = 0
        self.fail_after = fail_after

    def embed_documents(self, texts):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.embedded += len(texts)
        return [self._vec(t) for t in texts]

    def embed_query(self, text):
        return self._vec(text)

    def _vec(self, text):
        v = [0.0] * self.dim
        for word in text.lower().split():
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]


def make_corpus(folder: Path, n: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        paras = [
            f"Topic {i} paragraph {j}: condition{i} responds to treatment{j} in most adults. " * 4
            for j in range(3)
        ]
        (folder / f"note-{i:02d}.md").write_text(f"# Note {i}\n\n" + "\n\n## Part\n\n".join(paras) + "\n")
    (folder / "records.jsonl").write_text(
        "\n".join(json.dumps({"id": f"r{k}", "text": f"Record {k} about drug{k} dosing."}) for k in range(5))
    )
    return folder


def spec_of(settings, embedder) -> IndexSpec:
    return IndexSpec.of(embedder, settings.ingestion)


def state(settings, embedder) -> tuple[set[str], set[str]]:
    """(ids in Chroma, ids in BM25) of the settings' index."""
    chroma = open_index(settings, spec_of(settings, embedder)).all_ids()
    lexical = LexicalIndex.open(settings, spec_of(settings, embedder))
    lexical.sync()
    bm25 = set(json.loads((lexical.folder / "ids.json").read_text()))
    return chroma, bm25


@pytest.fixture
def small(settings):
    settings.ingestion.chunk_tokens = 64
    settings.ingestion.chunk_overlap_tokens = 8
    settings.ingestion.batch_size = 8
    return settings


def test_first_run_then_unchanged_run_adds_nothing(small, tmp_path):
    corpus = make_corpus(tmp_path / "c")
    emb = HashEmbedder()
    first = ingest([corpus], settings=small, embedder=emb)
    assert first.count("ingested") == 13 and first.total_chunks == first.chunks_added > 13
    assert first.chunks_embedded == first.total_chunks
    chroma, bm25 = state(small, emb)
    assert chroma == bm25 and len(chroma) == first.total_chunks
    again = ingest([corpus], settings=small, embedder=HashEmbedder())
    assert again.count("unchanged") == 13
    assert (again.chunks_added, again.chunks_removed, again.chunks_embedded) == (0, 0, 0)
    assert again.total_chunks == first.total_chunks
    # touching a file without changing it costs a hash, not an embedding
    os.utime(corpus / "note-00.md", ns=(1, 1))
    touched = ingest([corpus], settings=small, embedder=HashEmbedder())
    assert touched.count("unchanged") == 13 and touched.chunks_embedded == 0


def test_a_changed_file_replaces_its_chunks_and_embeds_only_new_ones(small, tmp_path):
    corpus = make_corpus(tmp_path / "c")
    emb = HashEmbedder()
    first = ingest([corpus], settings=small, embedder=emb)
    note = corpus / "note-03.md"
    note.write_text(note.read_text() + "\n## Added\n\nA new passage about zebrafish models.\n")
    emb2 = HashEmbedder()
    again = ingest([corpus], settings=small, embedder=emb2)
    assert again.count("ingested") == 1 and again.count("unchanged") == 12
    assert again.chunks_added >= 1 and emb2.embedded < 4  # earlier chunks reused, not re-embedded
    assert again.total_chunks == first.total_chunks + again.chunks_added - again.chunks_removed
    chroma, bm25 = state(small, emb)
    assert chroma == bm25
    hits = lexical_index(small, emb).query("zebrafish models", 3)
    assert hits and "zebrafish" in hits[0].text and hits[0].metadata["source"] == str(note.resolve())

    note.write_text("# Note 3\n\nNow only a short note about ferritin.\n")
    third = ingest([corpus], settings=small, embedder=HashEmbedder())
    assert third.chunks_removed > 1 and third.chunks_added == 1
    chroma, bm25 = state(small, emb)
    assert chroma == bm25 and len(chroma) == third.total_chunks
    assert not lexical_index(small, emb).query("zebrafish", 3)


def test_prune_removes_chunks_of_files_that_are_gone(small, tmp_path):
    corpus = make_corpus(tmp_path / "c")
    emb = HashEmbedder()
    first = ingest([corpus], settings=small, embedder=emb)
    gone = corpus / "note-05.md"
    gone_ids = open_index(small, spec_of(small, emb))._col.get(where={"source": str(gone.resolve())})["ids"]
    gone.unlink()
    kept = ingest([corpus], settings=small, embedder=emb)
    assert kept.gone == 1 and kept.total_chunks == first.total_chunks
    pruned = ingest([corpus], settings=small, embedder=emb, prune=True)
    assert pruned.count("removed") == 1 and pruned.chunks_removed == len(gone_ids) > 0
    chroma, bm25 = state(small, emb)
    assert chroma == bm25 and not chroma & set(gone_ids)
    assert pruned.total_chunks == first.total_chunks - len(gone_ids)


def test_an_interrupted_run_resumes_to_the_clean_result(small, tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        ingest([corpus], settings=small, embedder=HashEmbedder(fail_after=3))
    assert open_index(small, spec_of(small, HashEmbedder())).count() > 0  # something was written
    resumed = ingest([corpus], settings=small, embedder=HashEmbedder())
    assert resumed.count("unchanged") >= 1 and resumed.count("ingested") >= 1
    resumed_state = state(small, HashEmbedder())

    clean_home = tmp_path / "clean-home"
    monkeypatch.setenv("MEDCHAT_HOME", str(clean_home))
    from chatbot.settings import Settings

    clean_settings = Settings(ingestion=small.ingestion.model_dump())
    ingest([corpus], settings=clean_settings, embedder=HashEmbedder())
    assert resumed_state == state(clean_settings, HashEmbedder())
    assert resumed_state[0] == resumed_state[1]


def test_stray_chunks_from_a_killed_run_are_removed(small, tmp_path):
    """Chroma written, manifest not: the state a kill between the two leaves behind."""
    corpus = make_corpus(tmp_path / "c", n=3)
    emb = HashEmbedder()
    ingest([corpus], settings=small, embedder=emb)
    clean = state(small, emb)
    index = open_index(small, spec_of(small, emb))
    from ingestion.documents import Chunk

    stray = Chunk("stray-id", "stray text", "stray text", "x.md", "x", "", 0, 10)
    index.add([stray], [emb.embed_query("stray text")])
    again = ingest([corpus], settings=small, embedder=emb)
    assert again.recovered and state(small, emb) == clean


def test_bm25_refuses_an_index_built_with_another_embedder(small, tmp_path):
    corpus = make_corpus(tmp_path / "c", n=2)
    ingest([corpus], settings=small, embedder=HashEmbedder())
    other = IndexSpec("other/model", 64, small.ingestion.chunk_tokens, small.ingestion.chunk_overlap_tokens)
    with pytest.raises(IndexMismatchError, match=r"other/model|rebuild"):
        LexicalIndex.open(small, other)
    assert small.manifest_path.is_file()


def test_rebuild_starts_from_nothing(small, tmp_path):
    corpus = make_corpus(tmp_path / "c", n=2)
    ingest([corpus], settings=small, embedder=HashEmbedder())
    small.ingestion.chunk_tokens = 96
    with pytest.raises(IndexMismatchError):
        ingest([corpus], settings=small, embedder=HashEmbedder())
    rebuilt = ingest([corpus], settings=small, embedder=HashEmbedder(), rebuild=True)
    assert rebuilt.count("ingested") == 3 and rebuilt.chunks_added == rebuilt.total_chunks
    chroma, bm25 = state(small, HashEmbedder())
    assert chroma == bm25 and len(chroma) == rebuilt.total_chunks


def test_memory_is_bounded_by_batch_size(small, tmp_path, monkeypatch):
    """Chunks reach the embedder in batches of batch_size across files, never the whole corpus."""
    corpus = make_corpus(tmp_path / "c", n=10)
    emb = HashEmbedder()
    sizes: list[int] = []
    real = emb.embed_documents
    monkeypatch.setattr(emb, "embed_documents", lambda texts: sizes.append(len(texts)) or real(texts))
    report = ingest([corpus], settings=small, embedder=emb)
    assert max(sizes) <= small.ingestion.batch_size and len(sizes) > 3
    assert sum(sizes) == report.total_chunks


def _records(path: Path, n: int, word: str = "dosing") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps({"id": f"r{k}", "text": f"Record {k} about drug{k} {word}."}) + "\n" for k in range(n)
        )
    )
    return path


def test_a_large_jsonl_file_streams_through_in_batches(small, tmp_path):
    """One file of many records: its chunks reach Chroma batch by batch, before the file ends,
    and never sit in memory all at once."""
    big = _records(tmp_path / "c" / "big.jsonl", 100)
    emb = HashEmbedder()
    seen: list[tuple[int, int]] = []  # (batch size, chunks already in Chroma) at each embedding call
    index = open_index(small, spec_of(small, emb), create=True)
    real = emb.embed_documents

    def spy(texts):
        seen.append((len(texts), index.count()))
        return real(texts)

    emb.embed_documents = spy
    ticks: list[tuple] = []
    report = ingest([big], settings=small, embedder=emb, index=index, progress=lambda *a: ticks.append(a))
    assert report.count("ingested") == 1 and report.total_chunks == report.chunks_added == 100
    assert max(n for n, _ in seen) <= small.ingestion.batch_size and len(seen) >= 100 // 8
    assert seen[-1][1] >= 90  # the file's earlier batches were written while it was still being read
    during = [t for t in ticks if t[0] == str(big)]  # progress while that one file is read
    assert len({t[3] for t in during}) > 5 and ticks[-1] == ("", 1, 1, 100)
    from ingestion.manifest import Manifest

    m = Manifest(small.manifest_path, spec_of(small, emb).as_metadata())
    assert m.discard_staged() == set() and m.chunk_count() == 100
    m.close()


def test_killed_midway_through_one_large_file_resumes_to_the_clean_result(small, tmp_path, monkeypatch):
    big = _records(tmp_path / "c" / "big.jsonl", 60)
    with pytest.raises(KeyboardInterrupt):
        ingest([big], settings=small, embedder=HashEmbedder(fail_after=4))
    assert open_index(small, spec_of(small, HashEmbedder())).count() == 4 * 8  # written, not committed
    resumed = ingest([big], settings=small, embedder=HashEmbedder())
    assert resumed.recovered and resumed.count("ingested") == 1
    assert resumed.chunks_added == resumed.total_chunks == 60
    clean_home = tmp_path / "clean-home"
    monkeypatch.setenv("MEDCHAT_HOME", str(clean_home))
    from chatbot.settings import Settings

    clean = Settings(ingestion=small.ingestion.model_dump())
    ingest([big], settings=clean, embedder=HashEmbedder())
    assert state(small, HashEmbedder()) == state(clean, HashEmbedder())


def test_a_file_failing_midway_leaves_nothing_behind(small, tmp_path, monkeypatch):
    from chatbot.errors import IngestError
    from ingestion.loaders import jsondata

    corpus = tmp_path / "c"
    _records(corpus / "a-ok.jsonl", 5, "first")
    _records(corpus / "b-breaks.jsonl", 50, "second")
    _records(corpus / "c-ok.jsonl", 5, "third")
    real = jsondata._record_doc

    def breaks_at_40(record, where, path, opts, fallback):
        if path.name == "b-breaks.jsonl" and where == "40":
            raise IngestError(f"{path}: the disk went away at line 40")
        return real(record, where, path, opts, fallback)

    monkeypatch.setattr(jsondata, "_record_doc", breaks_at_40)
    emb = HashEmbedder()
    report = ingest([corpus], settings=small, embedder=emb)
    outcome = {Path(f.path).name: f for f in report.files}
    assert outcome["b-breaks.jsonl"].status == "failed" and "line 40" in outcome["b-breaks.jsonl"].reason
    assert outcome["a-ok.jsonl"].status == outcome["c-ok.jsonl"].status == "ingested"
    chroma, bm25 = state(small, emb)
    assert chroma == bm25 and len(chroma) == report.total_chunks == 10  # none of b's 39 records
    monkeypatch.setattr(jsondata, "_record_doc", real)
    again = ingest([corpus], settings=small, embedder=emb)
    assert again.count("ingested") == 1 and again.total_chunks == 60 and not again.recovered


def test_an_open_lexical_index_follows_later_ingestions(small, tmp_path):
    corpus = make_corpus(tmp_path / "c", n=2)
    emb = HashEmbedder()
    ingest([corpus], settings=small, embedder=emb)
    lexical = lexical_index(small, emb)
    assert not lexical.query("pangolin", 3)
    (corpus / "new.md").write_text("# New\n\nA pangolin note.\n")
    ingest([corpus], settings=small, embedder=emb)
    hits = lexical.query("pangolin", 3)
    assert len(hits) == 1 and hits[0].metadata["title"] == "New"


def test_chunks_keep_citation_metadata_and_their_span(small, tmp_path):
    from chatbot.settings import Settings
    from ingestion.chunking import Chunker, WordPieceCounter
    from ingestion.embedding import tokenizer_file
    from ingestion.loaders import load
    from tests.ingestion.test_loaders_formats import PUBMED

    p = tmp_path / "efetch.xml"
    p.write_text(PUBMED)
    s = Settings()
    chunker = Chunker(WordPieceCounter(tokenizer_file(s.embedding.model)), 64, 8)
    for doc in load(p):
        for c in chunker.chunk(doc):
            assert doc.text[c.char_start : c.char_end] == c.text
            meta = c.store_metadata()
            assert meta["title"] and meta["source"] == str(p) and meta["pmid"] == doc.metadata["pmid"]
            assert "year" in meta and "section" in meta

    emb = HashEmbedder()
    ingest([p], settings=small, embedder=emb)
    hits = lexical_index(small, emb).query("randomised patients", 1)
    assert hits[0].metadata["pmid"] == "31234567" and hits[0].metadata["section"] == "Methods"
    assert hits[0].metadata["year"] == 2019 and hits[0].metadata["journal"] == "The Lancet"


def test_real_medquad_files_through_the_pipeline(small):
    from tests.conftest import SHARED_DATASETS

    folder = SHARED_DATASETS / "medquad" / "3_GHR_QA"
    if not folder.is_dir():
        pytest.skip(f"shared data set not found at {folder}")
    files = sorted(folder.glob("*.xml"))[:3]
    emb = HashEmbedder()
    report = ingest(files, settings=small, embedder=emb)
    assert report.count("ingested") == 3 and report.total_chunks > 3
    got = open_index(small, spec_of(small, emb))._col.get(include=["metadatas"])
    for meta in got["metadatas"]:
        assert meta["uid"].startswith("3_GHR_QA:") and meta["url"].startswith("https://")
        assert meta["title"] and meta["source"].endswith(".xml") and meta["char_end"] > meta["char_start"]


def test_every_suffix_a_loader_reads_is_ingested_unless_the_settings_narrow_it(small, tmp_path, monkeypatch):
    """One list of suffixes, the loaders' (issue #32: the settings repeated it): a format added there
    is ingested by default; `ingestion.extensions` still narrows what is read."""
    from ingestion import loaders

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.md").write_text("# Asthma\n\nInhalers relieve wheeze and breathlessness.\n")
    (folder / "b.note").write_text("Warfarin needs regular INR checks.\n")
    monkeypatch.setitem(loaders.LOADERS, ".note", loaders.load_text)
    assert small.ingestion.extensions is None
    report = ingest([folder], settings=small, embedder=HashEmbedder())
    assert sorted(Path(f.path).name for f in report.files if f.status == "ingested") == ["a.md", "b.note"]
    small.ingestion.extensions = [".note"]
    (folder / "c.md").write_text("# Migraine\n\nA migraine is a headache with other symptoms.\n")
    again = ingest([folder], settings=small, embedder=HashEmbedder())
    assert [Path(f.path).name for f in again.files if f.status == "ingested"] == []
    assert again.count("unchanged") == 1  # b.note; the .md files are not read at all
