"""What every loader shares: its options, a way to report problems, and document assembly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import IngestError
from ingestion.documents import Document, Section

MAX_WARNINGS = 50


@dataclass
class LoadOptions:
    """Per-run loader options (from `IngestionSettings`) and the warnings a load produced."""

    jsonl_text_field: str = "text"
    jsonl_id_field: str = "id"
    jsonl_title_field: str = "title"
    max_text_chars: int = 10_000_000
    warnings: list[str] = field(default_factory=list)
    dropped: int = 0

    def warn(self, message: str) -> None:
        """Keep the first warnings of a file; count the rest (a bad million-line file stays small)."""
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)
        else:
            self.dropped += 1
            self.warnings[MAX_WARNINGS:] = [f"... and {self.dropped} more warnings for this file"]


def assemble(
    parts: Iterable[tuple[str, str]],
    *,
    source: str,
    title: str,
    metadata: dict[str, Any] | None = None,
) -> Document:
    """One document from (section title, text) parts, each part a section of its own.

    A titled part starts with its title on a line of its own (the chunker leaves
    that line out of the chunk and puts it into the embedded heading instead).
    """
    pieces: list[str] = []
    sections: list[Section] = []
    pos = 0
    for sec_title, body in parts:
        body = body.strip()
        if not body:
            continue
        sec_title = " ".join(sec_title.split())
        block = f"{sec_title}\n{body}" if sec_title else body
        if pieces:
            pieces.append("\n\n")
            pos += 2
        sections.append(Section(sec_title, pos, pos + len(block)))
        pieces.append(block)
        pos += len(block)
    return Document(
        text="".join(pieces),
        source=source,
        title=" ".join(title.split()),
        metadata={k: v for k, v in (metadata or {}).items() if v not in (None, "")},
        sections=sections,
    )


def check_size(path: Path, docs: list[Document], opts: LoadOptions) -> None:
    total = sum(len(d.text) for d in docs)
    if total > opts.max_text_chars:
        raise IngestError(
            f"{path}: holds {total:,} characters of text, more than ingestion.max_text_chars "
            f"({opts.max_text_chars:,}); split the file or raise MEDCHAT_INGESTION__MAX_TEXT_CHARS"
        )


def parse_xml(path: Path) -> Any:
    """Parse XML safely: no entity expansion, no external entities or DTDs fetched."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import parse

    try:
        return parse(str(path), forbid_dtd=False, forbid_entities=True, forbid_external=True).getroot()
    except DefusedXmlException as e:
        raise IngestError(
            f"{path}: refused unsafe XML ({type(e).__name__}: entity declarations and external "
            "references are never expanded or fetched)"
        ) from e
    except ParseError as e:
        raise IngestError(f"{path}: malformed XML ({e})") from e
    # deep nesting and read errors become IngestErrors in `loaders.load`, as for every format


def text_of(elem: Any) -> str:
    """All text inside an element, whitespace collapsed."""
    if elem is None:
        return ""
    return " ".join("".join(elem.itertext()).split())


def clean_block(text: str) -> str:
    """Text with each line's spaces collapsed and runs of blank lines cut to one."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
