"""PDF files through their text layer (pypdf); a page that cannot be read is skipped, not the file."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from chatbot.errors import IngestError
from ingestion.documents import Document
from ingestion.loaders.base import LoadOptions, assemble

log = logging.getLogger(__name__)
_YEAR = re.compile(r"(19|20)\d\d")


def load_pdf(path: Path, opts: LoadOptions | None = None) -> list[Document]:
    opts = opts or LoadOptions()
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as e:  # pragma: no cover - a core dependency
        raise IngestError(f"{path}: reading PDFs needs pypdf: run `pip install pypdf`") from e
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as e:
                raise IngestError(f"{path}: the PDF is encrypted; decrypt it first") from e
        pages = reader.pages
        n_pages = len(pages)
    except IngestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as e:
        raise IngestError(f"{path}: not a readable PDF ({type(e).__name__}: {e})") from e
    except Exception as e:  # pypdf raises many kinds on broken input
        raise IngestError(f"{path}: not a readable PDF ({type(e).__name__}: {e})") from e

    parts: list[tuple[str, str]] = []
    bad: list[int] = []
    blank: list[int] = []
    for number in range(1, n_pages + 1):
        try:
            text = pages[number - 1].extract_text() or ""
        except Exception as e:  # one bad page must not lose the document
            log.warning("%s: page %d unreadable: %s", path, number, e)
            bad.append(number)
            continue
        text = text.replace("\x00", "")
        if not text.strip():
            blank.append(number)
        parts.append((f"Page {number}", text))
    if bad:
        opts.warn(f"{path}: skipped unreadable page(s) {', '.join(map(str, bad))} of {n_pages}")
    if blank and len(blank) < n_pages:
        opts.warn(f"{path}: no text on page(s) {', '.join(map(str, blank))} (damaged, or images only)")
    meta: dict[str, str | int] = {}
    title = ""
    try:
        info = reader.metadata
        if info:
            title = str(info.title or "")
            if info.author:
                meta["author"] = str(info.author)
            created = info.get("/CreationDate")
            match = _YEAR.search(str(created or ""))
            if match:
                meta["year"] = int(match.group(0))
    except Exception:  # metadata is optional; a broken info dict is not worth failing the file
        pass
    meta["pages"] = n_pages
    doc = assemble(parts, source=str(path), title=title or path.stem.replace("_", " "), metadata=meta)
    if not doc.text.strip():
        raise IngestError(f"{path}: the PDF has no text layer (scanned images need OCR first)")
    return [doc]
