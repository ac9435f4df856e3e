"""JSON Lines (configurable text, id and title fields) and QA data sets stored as JSON.

JSON files are recognised by shape: SQuAD-style `{"data": [{"paragraphs": ...}]}`
(COVID-QA: one document per article), PubMedQA `{pmid: {"CONTEXTS": ...}}` (one
document per abstract, its labelled parts as sections; the conclusion that the
data set holds back as `LONG_ANSWER` is left out so that evaluation stays
honest), or a list of records read like JSON Lines.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatbot.errors import IngestError
from ingestion.documents import Document
from ingestion.loaders.base import LoadOptions, assemble, clean_block
from ingestion.loaders.text import _BOMS, read_text


def _record_doc(record: Any, where: str, path: Path, opts: LoadOptions, fallback_id: str) -> Document | None:
    if not isinstance(record, dict):
        opts.warn(f"{path}:{where}: not a JSON object; skipped")
        return None
    text = record.get(opts.jsonl_text_field)
    if not isinstance(text, str) or not text.strip():
        opts.warn(f"{path}:{where}: no text in field '{opts.jsonl_text_field}'; skipped")
        return None
    rid = record.get(opts.jsonl_id_field)
    rid = str(rid) if rid not in (None, "") else fallback_id
    title = record.get(opts.jsonl_title_field)
    meta = {
        k: v
        for k, v in record.items()
        if k not in (opts.jsonl_text_field, opts.jsonl_title_field) and isinstance(v, (str, int, float, bool))
    }
    meta["doc_id"] = rid
    return assemble(
        [("", clean_block(text))],
        source=str(path),
        title=str(title) if title else f"{path.stem} {rid}",
        metadata=meta,
    )


class _TooLong(str):
    """Stands for a line longer than the byte cap, which was skipped unread; its value is its size."""


def _lines(path: Path, max_bytes: int | None = None) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of each line, read a line at a time; text None for a line with NUL bytes.

    A UTF-8 line longer than `max_bytes` is never held whole: it is skipped in pieces and stands as
    `_TooLong` (a one-line 700 MB file costs a few megabytes, not 700).

    A byte-order mark picks UTF-8 or UTF-16; otherwise each line is UTF-8, or Latin-1 where it
    is not valid UTF-8 (so one badly encoded line costs only itself).
    """
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise IngestError(f"{path}: cannot read the file ({e.strerror or e})") from e
    for encoding, bom in _BOMS:
        if head.startswith(bom) and encoding == "utf-16":
            with path.open(encoding="utf-16", newline=None) as text:
                for number, line in enumerate(text, start=1):
                    yield number, None if "\x00" in line else line
            return
    with path.open("rb") as f:
        number = 0
        while raw := (f.readline(max_bytes + 1) if max_bytes else f.readline()):
            number += 1
            if max_bytes and len(raw) > max_bytes and not raw.endswith(b"\n"):
                size = len(raw)
                while more := f.readline(1 << 20):  # the rest of the line, a megabyte at a time
                    size += len(more)
                    if more.endswith(b"\n"):
                        break
                yield number, _TooLong(f"{size:,} bytes")
                continue
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if b"\x00" in raw:
                yield number, None
                continue
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, raw.decode("latin-1")


def iter_jsonl(path: Path, opts: LoadOptions | None = None) -> Iterator[Document]:
    """JSON Lines, one record at a time: memory holds one line, whatever the size of the file.

    Each record's text is limited by `max_text_chars` (the whole file is not); bad lines, records
    without text and repeated ids are warned about and skipped.
    """
    opts = opts or LoadOptions()
    seen: set[str] = set()
    found = False
    for number, line in _lines(path, max_bytes=4 * opts.max_text_chars):  # UTF-8: at most 4 bytes a char
        if line is None:
            opts.warn(f"{path}:{number}: contains NUL bytes; line skipped")
            continue
        if isinstance(line, _TooLong):
            opts.warn(f"{path}:{number}: {line}, over ingestion.max_text_chars; skipped unread")
            continue
        if not line.strip():
            continue
        if len(line) > opts.max_text_chars:
            opts.warn(f"{path}:{number}: {len(line):,} characters, over ingestion.max_text_chars; skipped")
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            opts.warn(f"{path}:{number}: bad JSON ({e.msg}); line skipped")
            continue
        except RecursionError:
            opts.warn(f"{path}:{number}: JSON nested too deeply; line skipped")
            continue
        doc = _record_doc(record, str(number), path, opts, f"line {number}")
        if doc is None:
            continue
        if doc.metadata["doc_id"] in seen:
            opts.warn(f"{path}:{number}: repeats id {doc.metadata['doc_id']!r}; line skipped")
            continue
        seen.add(doc.metadata["doc_id"])
        found = True
        yield doc
    if not found and opts.warnings:
        raise IngestError(f"{path}: no usable line ({opts.warnings[0]})")


def load_jsonl(path: Path, opts: LoadOptions | None = None) -> list[Document]:
    return list(iter_jsonl(path, opts))


def as_list(value: Any) -> list[Any]:
    """PubMedQA stores some lists as their Python repr; accept both."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.startswith("["):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return [value]
        return parsed if isinstance(parsed, list) else [value]
    return [value] if value else []


def _pubmedqa(data: dict[str, Any], path: Path) -> list[Document]:
    docs = []
    for pmid, item in data.items():
        contexts = [str(c) for c in as_list(item.get("CONTEXTS"))]
        labels = [str(x) for x in as_list(item.get("LABELS"))]
        labels += [""] * (len(contexts) - len(labels))
        parts = [
            (lab.title() if lab.isupper() else lab, ctx) for lab, ctx in zip(labels, contexts, strict=False)
        ]
        year = str(item.get("YEAR") or "")
        docs.append(
            assemble(
                parts,
                source=str(path),
                title=f"PubMed {pmid}",
                metadata={
                    "doc_id": str(pmid),
                    "pmid": str(pmid),
                    "url": f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/",
                    "year": int(year) if year.isdigit() else None,
                    "mesh": "; ".join(str(m) for m in as_list(item.get("MESHES"))),
                },
            )
        )
    return docs


def _squad(data: dict[str, Any], path: Path) -> list[Document]:
    docs = []
    for article in data.get("data", []):
        title = str(article.get("title") or "")
        for n, para in enumerate(article.get("paragraphs", [])):
            context = para.get("context")
            if not isinstance(context, str) or not context.strip():
                continue
            did = str(para.get("document_id") or f"{title or 'article'}-{n}")
            docs.append(
                assemble(
                    [("", context)],
                    source=str(path),
                    title=title or f"Document {did}",
                    metadata={"doc_id": did},
                )
            )
    return docs


def load_json(path: Path, opts: LoadOptions | None = None) -> list[Document]:
    opts = opts or LoadOptions()
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise IngestError(f"{path}: malformed JSON ({e.msg} at line {e.lineno})") from e
    except RecursionError as e:
        raise IngestError(f"{path}: JSON nested too deeply to read") from e
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        docs = _squad(data, path)
    elif (
        isinstance(data, dict)
        and data
        and all(isinstance(v, dict) and "CONTEXTS" in v for v in data.values())
    ):
        docs = _pubmedqa(data, path)
    elif isinstance(data, list):
        docs = [
            d
            for n, r in enumerate(data)
            if (d := _record_doc(r, f"item {n}", path, opts, f"item {n}")) is not None
        ]
    else:
        raise IngestError(
            f"{path}: JSON of an unknown shape (read are: SQuAD-style {{'data': [...]}}, "
            "PubMedQA {pmid: {CONTEXTS, LABELS, ...}}, or a list of records)"
        )
    return docs
