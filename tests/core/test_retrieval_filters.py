"""Metadata filters go into Chroma's `where` clause where it can express them (issue #32), so the
dense ranking is of the matching chunks however far down the whole index they are; what `where`
cannot express is checked in Python, with the same meaning."""

from __future__ import annotations

import math

import pytest

from chatbot.errors import ConfigError
from chatbot.retrieval import Retriever, chroma_where, matches
from ingestion.documents import Chunk
from ingestion.index import ChromaIndex, IndexSpec


class Fixed:
    """An embedder whose every query points at (1, 0)."""

    id = "test/fixed"
    dim = 2

    def embed_query(self, text):
        return [1.0, 0.0]


def chunk(n: int, **metadata) -> Chunk:
    text = f"chunk {n}"
    return Chunk(f"c{n:03d}", text, text, f"/notes/{n}.md", f"Note {n}", "", 0, len(text), metadata)


@pytest.fixture
def index(tmp_path):
    """30 chunks from 2010 nearest the query, then one from 2024."""
    spec = IndexSpec(Fixed.id, Fixed.dim, 200, 32)
    index = ChromaIndex.open(tmp_path / "chroma", "filters-test", spec, create=True)
    chunks = [chunk(n, year=2010) for n in range(30)]
    chunks.append(chunk(30, year=2024))
    angles = [n / 100 for n in range(30)] + [1.2]
    index.add(chunks, [[math.cos(a), math.sin(a)] for a in angles])
    return index


class Spy:
    """Records the `where` clause each query hands Chroma."""

    def __init__(self, index):
        self.index, self.wheres = index, []

    def query(self, embedding, k, where=None):
        self.wheres.append(where)
        return self.index.query(embedding, k, where)


def test_filters_are_chromas_where_clause_and_find_a_chunk_far_down_the_ranking(index):
    spy = Spy(index)
    found = Retriever(spy, Fixed(), 2, candidates=2).retrieve("q", filters={"year": {"$gte": 2020}})
    # the Python filter over the 8 nearest candidates found nothing; Chroma's where finds the 31st
    assert [p.id for p in found] == ["c030"]
    assert spy.wheres[0] == {"year": {"$gte": 2020}}
    spy.wheres.clear()  # (fewer than k found: a look at the unfiltered nearest, for a type mismatch)
    both = {"year": {"$gte": 2000, "$lte": 2015}, "source": "/notes/3.md"}
    assert [p.id for p in Retriever(spy, Fixed(), 4).retrieve("q", filters=both)] == ["c003"]
    assert spy.wheres[0] == {
        "$and": [{"year": {"$gte": 2000}}, {"year": {"$lte": 2015}}, {"source": {"$eq": "/notes/3.md"}}]
    }


def test_a_number_compared_with_a_text_field_is_still_the_clear_error(index):
    with pytest.raises(ConfigError, match="filter on 'title' compares int"):
        Retriever(index, Fixed(), 2).retrieve("q", filters={"title": {"$gte": 2020}})
    # `year` is text in a chunk near the question: Chroma would leave it out without a word
    index.add([chunk(31, year="2019")], [[1.0, 0.0]])
    with pytest.raises(ConfigError, match="filter on 'year'"):
        Retriever(index, Fixed(), 2).retrieve("q", filters={"year": {"$gte": 2030}})


def test_what_where_cannot_say_is_checked_in_python_with_the_same_meaning():
    where, rest = chroma_where(
        {"title": {"$gte": "M"}, "source": {"$in": ["a.md", "b.md"]}, "tags": ["x"], "year": {"$ne": 2020}}
    )
    assert where == {"$and": [{"source": {"$in": ["a.md", "b.md"]}}, {"year": {"$ne": 2020}}]}
    assert rest == {"title": {"$gte": "M"}, "tags": ["x"]}  # text ranges and non-scalar values
    assert chroma_where(None) == (None, {}) and chroma_where({"a": 1}) == ({"a": {"$eq": 1}}, {})
    assert matches({"title": "Migraine", "tags": ["x"]}, rest) and not matches({"title": "Asthma"}, rest)


def test_text_ranges_still_filter(index):
    found = Retriever(index, Fixed(), 3).retrieve("q", filters={"title": {"$gte": "Note 5"}, "year": 2010})
    assert found and all(p.title >= "Note 5" for p in found)
