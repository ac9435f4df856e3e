"""Hybrid retrieval: dense (Chroma) and lexical (BM25) rankings fused by reciprocal rank, and the
passage records the chain cites. Dense retrieval alone when the settings turn `retrieval.hybrid` off
or no BM25 index exists."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatbot.ranking import reciprocal_rank_fusion

if TYPE_CHECKING:
    from chatbot.settings import RetrievalSettings, Settings
    from ingestion.embedding import Embedder
    from ingestion.index import ChromaIndex, Hit


@dataclass(frozen=True)
class Passage:  # satisfies prompts.PassageLike
    """One retrieved chunk with everything a citation shows."""

    id: str
    text: str
    title: str
    section: str
    source: str
    score: float
    """Cosine similarity to the question (0 when only the lexical index found it)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    fused: float = 0.0
    """Reciprocal-rank-fusion score (the dense similarity when there is no lexical index)."""
    dense_scored: bool = True

    @property
    def source_name(self) -> str:
        return Path(self.source).name if self.source else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "section": self.section,
            "path": self.source,
            "score": round(self.score, 4),
            "fused": round(self.fused, 5),
            "text": self.text,
            "metadata": self.metadata,
        }


class LexicalSearch(Protocol):
    """What the retriever needs of a lexical index (`ingestion.lexical.LexicalIndex` is the one)."""

    def query(self, text: str, k: int) -> list[Hit]: ...


Filters = Mapping[str, Any]
"""Metadata a passage must match: a value for equality, or a dict of
`$gte`/`$lte`/`$in`/`$ne` conditions, e.g. `{"source": "...", "year": {"$gte": 2020}}`."""


@dataclass(frozen=True)
class RetrievalParams:
    """What one request sets about retrieval, as `GenerationParams` does for generation.

    Passed into `Chain.answer`/`Chain.stream` (a chat page's k slider, a compared variant's k,
    `medchat ask -k/--filter`), so that nothing copies the settings or builds a chain per request.
    The rest of retrieval (the evidence floor, fusion weights, MMR) belongs to the deployment and
    comes from `RetrievalSettings`.
    """

    k: int | None = None
    """Passages given to the model; None: the settings' `retrieval.k` (the chain decides, nobody else)."""
    filters: Filters | None = None


_SCALAR = (str, int, float, bool)


def chroma_where(filters: Filters | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """`filters` split into Chroma's `where` clause and what only Python can check.

    Chroma takes equality, `$ne` and `$in` on plain values, and `$gte`/`$lte` on numbers, with the
    same meaning as `matches` (a missing field fails all but `$ne`). Left to Python: a range on
    text (Chroma compares numbers only) and anything that is not a plain value."""
    conditions: list[dict[str, Any]] = []
    rest: dict[str, Any] = {}
    for key, want in (filters or {}).items():
        ops = dict(want) if isinstance(want, Mapping) else {"$eq": want}
        for op, ref in ops.items():
            numeric = isinstance(ref, int | float) and not isinstance(ref, bool)
            if (
                (op in ("$eq", "$ne") and isinstance(ref, _SCALAR))
                or (op in ("$gte", "$lte") and numeric)
                or (
                    op == "$in"
                    and isinstance(ref, list | tuple)
                    and ref
                    and all(isinstance(v, _SCALAR) for v in ref)
                )
            ):
                conditions.append({key: {op: list(ref) if op == "$in" else ref}})
            else:
                rest.setdefault(key, {})[op] = ref
    where = conditions[0] if len(conditions) == 1 else {"$and": conditions} if conditions else None
    return where, {k: v["$eq"] if set(v) == {"$eq"} else v for k, v in rest.items()}


def matches(metadata: Mapping[str, Any], filters: Filters | None) -> bool:
    for key, want in (filters or {}).items():
        have = metadata.get(key)
        if isinstance(want, Mapping):
            for op, ref in want.items():
                ok = {
                    "$gte": lambda h, r: h is not None and h >= r,
                    "$lte": lambda h, r: h is not None and h <= r,
                    "$in": lambda h, r: h in r,
                    "$ne": lambda h, r: h != r,
                }.get(op)
                if ok is None:
                    raise ValueError(f"unknown filter operator {op!r} for {key!r}")
                try:
                    if not ok(have, ref):
                        return False
                except TypeError as e:  # `title>=2020`: a number against a text field, or the reverse
                    from chatbot.errors import ConfigError

                    raise ConfigError(
                        f"the filter on {key!r} compares {type(ref).__name__} {str(ref)[:40]!r} with a "
                        f"{type(have).__name__} value ({str(have)[:40]!r}): give {key} a value of that "
                        "kind, or filter a field that holds numbers, e.g. --filter year>=2020"
                    ) from e
        elif have != want:
            return False
    return True


def _passage(hit: Hit, dense: float | None, fused: float) -> Passage:
    meta = {k: v for k, v in hit.metadata.items() if k not in {"title", "section", "source", "doc_hash"}}
    return Passage(
        id=hit.id,
        text=hit.text,
        title=str(hit.metadata.get("title", "")),
        section=str(hit.metadata.get("section", "")),
        source=str(hit.metadata.get("source", "")),
        score=dense if dense is not None else 0.0,
        metadata=meta,
        fused=fused,
        dense_scored=dense is not None,
    )


class Retriever:
    """Dense retrieval from Chroma fused with lexical (BM25) retrieval by reciprocal rank fusion;
    dense alone when no lexical index is given."""

    def __init__(
        self,
        index: ChromaIndex,
        embedder: Embedder,
        k: int,
        *,
        lexical: LexicalSearch | None = None,
        candidates: int = 20,
        dense_weight: float = 1.0,
        lexical_weight: float = 1.0,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.k = k
        self.lexical = lexical
        self.candidates = candidates
        self.weights = (dense_weight, lexical_weight)

    @classmethod
    def from_settings(
        cls, index: ChromaIndex, embedder: Embedder, r: RetrievalSettings, lexical: LexicalSearch | None
    ) -> Retriever:
        """A retriever with k, candidates and fusion weights from settings; BM25 only when `r.hybrid`."""
        return cls(
            index,
            embedder,
            r.k,
            lexical=lexical if r.hybrid else None,
            candidates=r.candidates,
            dense_weight=r.dense_weight,
            lexical_weight=r.lexical_weight,
        )

    def retrieve(self, question: str, k: int | None = None, filters: Filters | None = None) -> list[Passage]:
        """The best `k` passages, best first by the fused rank; `score` is the dense cosine similarity
        (0 for a passage only the lexical index found), `fused` the fusion score.

        Filters go into Chroma's `where` as far as it can express them (`chroma_where`), so the dense
        ranking is of the matching chunks, however far down the whole index they are; the rest are
        checked here, on a larger pool. BM25 has no filters: its hits are checked here too."""
        k = k or self.k
        where, rest = chroma_where(filters)
        pool = max(k, self.candidates)
        vector = self.embedder.embed_query(question)
        dense = [
            h for h in self.index.query(vector, pool * (4 if rest else 1), where) if matches(h.metadata, rest)
        ]
        if where and len(dense) < k:
            # Chroma leaves out a text field compared with a number without a word: look at the
            # unfiltered nearest chunks to say so (`matches` raises), rather than answer from nothing
            for h in self.index.query(vector, pool):
                matches(h.metadata, filters)
        if self.lexical is None:
            return [_passage(h, h.score, h.score) for h in dense[:k]]
        lexical = [
            h
            for h in self.lexical.query(question, pool * 4 if filters else pool)
            if matches(h.metadata, filters)
        ]
        by_id = {h.id: h for h in lexical} | {h.id: h for h in dense}
        dense_score = {h.id: h.score for h in dense}
        fused = reciprocal_rank_fusion([[h.id for h in dense], [h.id for h in lexical]], self.weights)
        return [_passage(by_id[i], dense_score.get(i), f) for i, f in fused[:k]]


def open_retriever(settings: Settings, embedder: Embedder | None = None) -> Retriever:
    """A retriever over the existing index; raises `IndexMissingError` if there is none.

    With `retrieval.hybrid` (the default) the BM25 index kept beside Chroma is fused in.
    """
    from ingestion.embedding import get_embedder
    from ingestion.index import IndexSpec, open_index, require_index
    from ingestion.lexical import LexicalIndex

    if settings.store.mode == "embedded":
        require_index(settings.chroma_dir)  # before loading the embedder: fail at once
    embedder = embedder or get_embedder(settings)
    spec = IndexSpec.of(embedder, settings.ingestion)
    index = open_index(settings, spec)
    lexical = None
    if settings.retrieval.hybrid and settings.manifest_path.is_file():
        lexical = LexicalIndex.open(settings, spec)
    elif settings.retrieval.hybrid and settings.store.mode == "server":
        logging.getLogger(__name__).warning(
            "no manifest at %s: retrieving from the Chroma server without BM25; copy the ingesting "
            "machine's index/ folder here for hybrid retrieval (docs/deploy.md)",
            settings.manifest_path,
        )
    return Retriever.from_settings(index, embedder, settings.retrieval, lexical)
