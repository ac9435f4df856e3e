"""The vector index: one Chroma collection that remembers how it was built.

The collection's metadata records the embedder and the chunking settings;
opening it with different ones is refused, so vector spaces never mix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import IndexMismatchError, IndexMissingError
from chatbot.settings import CHROMA_FILE
from ingestion.documents import Chunk

if TYPE_CHECKING:
    from chatbot.settings import IngestionSettings, Settings
    from ingestion.embedding import Embedder

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class IndexSpec:
    """What an index was built with; two specs must agree to share an index."""

    embedder_id: str
    dim: int
    chunk_tokens: int
    chunk_overlap_tokens: int

    @classmethod
    def of(cls, embedder: Embedder, ingestion: IngestionSettings) -> IndexSpec:
        """The spec of an index built by `embedder` with the chunking in `ingestion` settings."""
        return cls(embedder.id, embedder.dim, ingestion.chunk_tokens, ingestion.chunk_overlap_tokens)

    def as_metadata(self) -> dict[str, str | int]:
        return {
            "medchat_schema": SCHEMA_VERSION,
            "embedder_id": self.embedder_id,
            "embedding_dim": self.dim,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap_tokens": self.chunk_overlap_tokens,
        }


@dataclass(frozen=True)
class Hit:
    id: str
    text: str
    metadata: dict[str, Any]
    score: float


def require_index(path: Path) -> None:
    """Raise the "ingest first" error when no index was ever written at `path`."""
    if not (path / CHROMA_FILE).is_file():
        raise IndexMissingError(
            f"no index at {path}: run `medchat ingest PATH...` "
            "(or `medchat ingest --sample` for the bundled notes) first"
        )


Server = tuple[str, int]


def _client(path: Path, server: Server | None = None) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if server is None:
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    host, port = server
    try:
        client = chromadb.HttpClient(host=host, port=port, settings=chroma_settings)
        client.heartbeat()
    except Exception as e:  # connection errors come in many types, all mean "no server there"
        raise IndexMissingError(
            f"no Chroma server answers at {host}:{port} ({type(e).__name__}): start one with "
            f"`chroma run --path DIR --host {host} --port {port}`, or set MEDCHAT_STORE__MODE=embedded"
        ) from e
    return client


def _server(settings: Settings) -> Server | None:
    return (settings.store.host, settings.store.port) if settings.store.mode == "server" else None


def open_index(settings: Settings, spec: IndexSpec, *, create: bool = False) -> ChromaIndex:
    """The index the settings name: embedded under `chroma_dir`, or on a Chroma server."""
    return ChromaIndex.open(
        settings.chroma_dir, settings.store.collection, spec, create=create, server=_server(settings)
    )


def drop_index(settings: Settings) -> None:
    ChromaIndex.drop(settings.chroma_dir, settings.store.collection, server=_server(settings))


class ChromaIndex:
    """A Chroma collection of chunks with cosine similarity."""

    def __init__(self, collection: Any, spec: IndexSpec, path: Path, client: Any = None) -> None:
        self._col = collection
        self.spec = spec
        self.path = path
        self._client = client

    def close(self) -> None:
        """Give back the client's files and memory. Chroma keeps one system per path alive for the
        whole process otherwise: a process that opens many indexes (a test run, a fuzzing campaign,
        an app that re-ingests) ran out of file handles after about 2,000."""
        client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            client.close()

    @classmethod
    def open(
        cls, path: Path, name: str, spec: IndexSpec, *, create: bool = False, server: Server | None = None
    ) -> ChromaIndex:
        """Open the collection, creating it if asked; refuse one built differently."""
        if server is None:
            if not create:
                require_index(path)
            path.mkdir(parents=True, exist_ok=True)
        client = _client(path, server)
        where = f"{server[0]}:{server[1]}" if server else str(path)
        existing = {c if isinstance(c, str) else c.name for c in client.list_collections()}
        if name not in existing:
            if not create:
                raise IndexMissingError(
                    f"the index at {where} has no collection '{name}': run `medchat ingest PATH...` first"
                )
            col = client.create_collection(
                name=name,
                metadata=spec.as_metadata(),
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,
            )
            return cls(col, spec, path, client)
        col = client.get_collection(name=name, embedding_function=None)
        cls._check(col.metadata or {}, spec, path)
        return cls(col, spec, path, client)

    @staticmethod
    def _check(meta: dict[str, Any], spec: IndexSpec, path: Path) -> None:
        built = meta.get("embedder_id")
        if built != spec.embedder_id or meta.get("embedding_dim") != spec.dim:
            raise IndexMismatchError(
                f"the index at {path} was built with embedder '{built}' "
                f"({meta.get('embedding_dim')} dims) but the settings ask for "
                f"'{spec.embedder_id}' ({spec.dim} dims): set MEDCHAT_EMBEDDING__MODEL back, "
                "or rebuild with `medchat ingest --rebuild PATH...`"
            )
        chunking = (meta.get("chunk_tokens"), meta.get("chunk_overlap_tokens"))
        if chunking != (spec.chunk_tokens, spec.chunk_overlap_tokens):
            raise IndexMismatchError(
                f"the index at {path} was chunked at {chunking[0]} tokens with "
                f"{chunking[1]} overlap, the settings ask for {spec.chunk_tokens}/"
                f"{spec.chunk_overlap_tokens}: restore the settings or rebuild with "
                "`medchat ingest --rebuild PATH...`"
            )

    @staticmethod
    def drop(path: Path, name: str, server: Server | None = None) -> None:
        if server is None and not (path / CHROMA_FILE).is_file():
            return
        client = _client(path, server)
        existing = {c if isinstance(c, str) else c.name for c in client.list_collections()}
        if name in existing:
            client.delete_collection(name)

    def count(self) -> int:
        return int(self._col.count())

    def all_ids(self, page: int = 5000) -> set[str]:
        """Every chunk id in the collection (read in pages, for crash recovery)."""
        ids: set[str] = set()
        offset = 0
        while True:
            got = self._col.get(include=[], limit=page, offset=offset)["ids"]
            ids.update(got)
            if len(got) < page:
                return ids
            offset += page

    def delete(self, ids: Sequence[str], page: int = 5000) -> None:
        ids = list(ids)
        for i in range(0, len(ids), page):
            self._col.delete(ids=ids[i : i + page])

    def add(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]], doc_hash: str = "") -> None:
        if not chunks:
            return
        metas = []
        for c in chunks:
            meta = c.store_metadata()
            if doc_hash:
                meta["doc_hash"] = doc_hash
            metas.append(meta)
        self._col.upsert(
            ids=[c.id for c in chunks],
            documents=[c.text for c in chunks],
            embeddings=embeddings if hasattr(embeddings, "shape") else [list(e) for e in embeddings],
            metadatas=metas,
        )

    def query(self, embedding: Sequence[float], k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        """The `k` chunks nearest `embedding`, of those whose metadata match Chroma's `where` clause."""
        n = self.count()
        if n == 0:
            return []
        res = self._col.query(
            query_embeddings=[list(embedding)],
            n_results=min(k, n),
            where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(id=i, text=d, metadata=dict(m or {}), score=1.0 - float(dist))
            for i, d, m, dist in zip(
                res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
            )
        ]
