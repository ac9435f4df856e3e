"""Markdown (with optional YAML front matter) and plain text in any common encoding."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from chatbot.errors import IngestError
from ingestion.documents import Document, Section
from ingestion.loaders.base import LoadOptions

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_BOMS = (("utf-8-sig", b"\xef\xbb\xbf"), ("utf-16", b"\xff\xfe"), ("utf-16", b"\xfe\xff"))


def read_text(path: Path) -> str:
    """Decode a text file: BOM-marked UTF-8/UTF-16, else UTF-8, else Latin-1."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IngestError(f"{path}: cannot read the file ({e.strerror or e})") from e
    for encoding, bom in _BOMS:
        if raw.startswith(bom):
            return raw.decode(encoding)
    if b"\x00" in raw:
        raise IngestError(f"{path}: contains NUL bytes, so it is not a text file; skipped")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _scalar(value: Any) -> str | int | float | bool:
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _front_matter(text: str, path: Path) -> tuple[dict[str, Any], int]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, 0
    import yaml

    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as e:
        raise IngestError(f"{path}: the front matter is not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise IngestError(f"{path}: the front matter must be `key: value` lines")
    return {str(k): _scalar(v) for k, v in data.items() if v is not None}, match.end()


def markdown_sections(text: str, start: int = 0) -> list[Section]:
    """Sections of a Markdown text from its headings; text before the first is untitled."""
    heads = [(m.start(), m.group(2).strip()) for m in _HEADING.finditer(text, start)]
    sections: list[Section] = []
    if not heads or text[start : heads[0][0]].strip():
        sections.append(Section("", start, heads[0][0] if heads else len(text)))
    for i, (pos, title) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(text)
        sections.append(Section(title, pos, end))
    return sections


def load_markdown(path: Path, opts: LoadOptions | None = None) -> list[Document]:
    text = read_text(path)
    meta, body_start = _front_matter(text, path)
    sections = markdown_sections(text, body_start)
    first_heading = next((s.title for s in sections if s.title), "")
    title = str(meta.pop("title", "") or first_heading or path.stem.replace("-", " "))
    return [Document(text=text, source=str(path), title=title, metadata=meta, sections=sections)]


def load_text(path: Path, opts: LoadOptions | None = None) -> list[Document]:
    text = read_text(path)
    title = path.stem.replace("_", " ").replace("-", " ")
    return [Document(text=text, source=str(path), title=title, sections=[Section("", 0, len(text))])]
