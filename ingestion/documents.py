"""The records that flow through ingestion: documents, sections and chunks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Section:
    """A titled stretch of a document, as character offsets into its text."""

    title: str
    start: int
    end: int


@dataclass
class Document:
    """One loaded document: its full text, where it came from and its sections."""

    text: str
    source: str
    title: str
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The source plus the record id, for files that hold many documents (JSONL, XML sets)."""
        doc_id = self.metadata.get("doc_id")
        return f"{self.source}#{doc_id}" if doc_id not in (None, "") else self.source


@dataclass(frozen=True)
class Chunk:
    """A passage small enough for the embedder, with everything a citation needs."""

    id: str
    text: str
    embed_text: str
    source: str
    title: str
    section: str
    char_start: int
    char_end: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def store_metadata(self) -> dict[str, str | int | float | bool]:
        """Flat metadata for the vector store (scalars only)."""
        meta: dict[str, str | int | float | bool] = {
            "source": self.source,
            "title": self.title,
            "section": self.section,
            "char_start": self.char_start,
            "char_end": self.char_end,
        }
        for key, value in self.metadata.items():
            if isinstance(value, (str, int, float, bool)) and key not in meta:
                meta[key] = value
        return meta


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def chunk_id(source: str, text: str, char_start: int) -> str:
    """Content-derived id: the same text at the same place in the same source."""
    return sha256(f"{source}\x00{char_start}\x00{text}")[:32]
