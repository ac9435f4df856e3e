"""Dense retrieval from the Chroma index, with the passage records the chain cites."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbot.settings import Settings
    from ingestion.embedding import Embedder
    from ingestion.index import ChromaIndex


@dataclass(frozen=True)
class Passage:  # satisfies prompts.PassageLike
    """One retrieved chunk with everything a citation shows."""

    id: str
    text: str
    title: str
    section: str
    source: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

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
            "text": self.text,
            "metadata": self.metadata,
        }


class Retriever:
    def __init__(self, index: ChromaIndex, embedder: Embedder, k: int) -> None:
        self.index = index
        self.embedder = embedder
        self.k = k

    def retrieve(self, question: str, k: int | None = None) -> list[Passage]:
        hits = self.index.query(self.embedder.embed_query(question), k or self.k)
        passages = []
        for h in hits:
            meta = {
                key: v
                for key, v in h.metadata.items()
                if key not in {"title", "section", "source", "doc_hash"}
            }
            passages.append(
                Passage(
                    id=h.id,
                    text=h.text,
                    title=str(h.metadata.get("title", "")),
                    section=str(h.metadata.get("section", "")),
                    source=str(h.metadata.get("source", "")),
                    score=h.score,
                    metadata=meta,
                )
            )
        return passages


_embedders: dict[tuple[str, str], Embedder] = {}
_lock = threading.Lock()


def get_embedder(settings: Settings) -> Embedder:
    """The process-wide embedder for these settings, loaded on first use."""
    from ingestion.embedding import SentenceTransformerEmbedder

    key = (settings.embedding.model, settings.embedding.device)
    with _lock:
        if key not in _embedders:
            _embedders[key] = SentenceTransformerEmbedder(
                settings.embedding.model, settings.embedding.device, settings.embedding.batch_size
            )
        return _embedders[key]


def open_retriever(settings: Settings, embedder: Embedder | None = None) -> Retriever:
    """A retriever over the existing index; raises `IndexMissingError` if there is none."""
    from ingestion.index import ChromaIndex, IndexSpec, require_index

    require_index(settings.chroma_dir)  # before loading the embedder: fail at once
    embedder = embedder or get_embedder(settings)
    spec = IndexSpec(
        embedder.id, embedder.dim, settings.ingestion.chunk_tokens, settings.ingestion.chunk_overlap_tokens
    )
    index = ChromaIndex.open(settings.chroma_dir, settings.store.collection, spec)
    return Retriever(index, embedder, settings.retrieval.k)
