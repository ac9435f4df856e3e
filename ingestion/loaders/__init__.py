"""Loaders: one module per file format, each turning a file into `Document`s.

`load(path)` picks the loader by suffix. Every loader raises `IngestError`
with the file and the reason when it cannot read a file, so the caller can
report it and go on; problems inside a file that does not stop it (a bad
JSON line, an unreadable PDF page) go to `LoadOptions.warnings`. Parsing
libraries are imported by the loaders that use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from chatbot.errors import IngestError
from ingestion.documents import Document
from ingestion.loaders.base import LoadOptions, check_size
from ingestion.loaders.html import load_html
from ingestion.loaders.jsondata import iter_jsonl, load_json, load_jsonl
from ingestion.loaders.pdf import load_pdf
from ingestion.loaders.text import load_markdown, load_text, markdown_sections, read_text
from ingestion.loaders.xml import load_xml

Loader = Callable[[Path, LoadOptions | None], list[Document]]

LOADERS: dict[str, Loader] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".text": load_text,
    ".pdf": load_pdf,
    ".html": load_html,
    ".htm": load_html,
    ".xhtml": load_html,
    ".jsonl": load_jsonl,
    ".ndjson": load_jsonl,
    ".json": load_json,
    ".xml": load_xml,
    ".nxml": load_xml,
}

__all__ = [
    "LOADERS",
    "STREAMED",
    "LoadOptions",
    "iter_jsonl",
    "iter_load",
    "load",
    "load_html",
    "load_json",
    "load_jsonl",
    "load_markdown",
    "load_pdf",
    "load_text",
    "load_xml",
    "markdown_sections",
    "read_text",
]


# formats read a record at a time, so that a file of any size costs one record's memory
STREAMED: dict[str, Callable[[Path, LoadOptions | None], Iterator[Document]]] = {
    ".jsonl": iter_jsonl,
    ".ndjson": iter_jsonl,
}


@contextmanager
def _read_errors(path: Path) -> Iterator[None]:
    """Whatever goes wrong reading `path` becomes an `IngestError` naming the file."""
    try:
        yield
    except IngestError:
        raise
    except RecursionError as e:
        raise IngestError(f"{path}: nested too deeply to read") from e
    except MemoryError as e:
        raise IngestError(f"{path}: too large to read into memory") from e
    except OSError as e:
        raise IngestError(f"{path}: cannot read the file ({e.strerror or e})") from e


def iter_load(path: Path, opts: LoadOptions | None = None) -> Iterator[Document]:
    """The documents of one file as they are read: streamed where the format allows (JSON Lines),
    else all of `load(path)`. Errors are `IngestError`s, raised at the start or midway."""
    opts = opts or LoadOptions()
    stream = STREAMED.get(path.suffix.lower())
    if stream is None:
        yield from load(path, opts)
        return
    found = False
    with _read_errors(path):
        for doc in stream(path, opts):
            if doc.text.strip():
                found = True
                yield doc
    if not found:
        raise IngestError(f"{path}: the file is empty (no text found)")


def load(path: Path, opts: LoadOptions | None = None) -> list[Document]:
    """Load one file with the loader for its suffix."""
    opts = opts or LoadOptions()
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        known = ", ".join(sorted(LOADERS))
        raise IngestError(f"{path}: no loader for '{path.suffix}' files (known: {known})")
    with _read_errors(path):
        docs = loader(path, opts)
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise IngestError(f"{path}: the file is empty (no text found)")
    if path.suffix.lower() not in STREAMED:  # streamed formats are limited per record instead
        check_size(path, docs, opts)
    return docs
