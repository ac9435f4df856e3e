"""`medchat ingest`: files -> documents -> chunks -> embeddings -> index.

A file whose content has not changed since it was indexed is skipped; a
changed file has its old chunks replaced. A file that cannot be read is
reported with its reason and the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.errors import IngestError, MedchatError
from ingestion.documents import sha256

if TYPE_CHECKING:
    from chatbot.settings import Settings
    from ingestion.embedding import Embedder
    from ingestion.index import ChromaIndex

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class FileOutcome:
    path: str
    status: str  # ingested | unchanged | skipped | failed
    chunks: int = 0
    reason: str = ""


@dataclass
class IngestReport:
    files_seen: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    total_chunks: int = 0
    seconds: float = 0.0
    files: list[FileOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        for status in ("ingested", "unchanged", "skipped", "failed"):
            data[f"files_{status}"] = self.count(status)
        return data


def iter_files(paths: Iterable[Path], extensions: Iterable[str], report: IngestReport) -> Iterator[Path]:
    """Files under the given paths with a known suffix, each once, in a stable order."""
    exts = {e.lower() for e in extensions}
    seen: set[Path] = set()
    for root in paths:
        if not root.exists():
            report.files.append(FileOutcome(str(root), "failed", reason="no such file or folder"))
            continue
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if path.suffix.lower() not in exts:
                if root.is_file():
                    report.files.append(
                        FileOutcome(str(path), "skipped", reason=f"'{path.suffix}' is not an ingested type")
                    )
                continue
            yield resolved


def ingest(
    paths: Iterable[Path | str],
    *,
    settings: Settings,
    embedder: Embedder | None = None,
    index: ChromaIndex | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Index the Markdown and text files under `paths`; return what happened."""
    from ingestion.chunking import Chunker, WordPieceCounter
    from ingestion.embedding import SentenceTransformerEmbedder, tokenizer_file
    from ingestion.index import ChromaIndex, IndexSpec
    from ingestion.loaders import load

    started = time.perf_counter()
    report = IngestReport()
    files = list(iter_files([Path(p).expanduser() for p in paths], settings.ingestion.extensions, report))
    report.files_seen = len(files) + len(report.files)

    if embedder is None:
        embedder = SentenceTransformerEmbedder(
            settings.embedding.model, settings.embedding.device, settings.embedding.batch_size
        )
    spec = IndexSpec(
        embedder.id, embedder.dim, settings.ingestion.chunk_tokens, settings.ingestion.chunk_overlap_tokens
    )
    if index is None:
        if rebuild:
            ChromaIndex.drop(settings.chroma_dir, settings.store.collection)
        index = ChromaIndex.open(settings.chroma_dir, settings.store.collection, spec, create=True)
    chunker = Chunker(
        WordPieceCounter(tokenizer_file(settings.embedding.model)),
        settings.ingestion.chunk_tokens,
        settings.ingestion.chunk_overlap_tokens,
    )
    known = index.source_hashes()

    for i, path in enumerate(files):
        if progress:
            progress(str(path), i, len(files))
        try:
            docs = load(path)
        except IngestError as e:
            report.files.append(FileOutcome(str(path), "failed", reason=str(e)))
            log.warning("%s", e)
            continue
        doc_hash = sha256("\x00".join(d.content_hash for d in docs))
        if known.get(str(path)) == doc_hash:
            report.files.append(FileOutcome(str(path), "unchanged"))
            continue
        try:
            chunks = [c for d in docs for c in chunker.chunk(d)]
            vectors = embedder.embed_documents([c.embed_text for c in chunks])
        except MedchatError as e:
            report.files.append(FileOutcome(str(path), "failed", reason=str(e)))
            continue
        old = index.ids_for_source(str(path))
        new_ids = {c.id for c in chunks}
        stale = [i for i in old if i not in new_ids]
        index.add(chunks, vectors, doc_hash)
        index.delete(stale)
        report.chunks_added += len(new_ids - set(old))
        report.chunks_removed += len(stale)
        report.files.append(FileOutcome(str(path), "ingested", chunks=len(chunks)))
    if progress:
        progress("", len(files), len(files))
    report.total_chunks = index.count()
    report.seconds = round(time.perf_counter() - started, 3)
    return report
