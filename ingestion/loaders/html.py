"""HTML through a real (streaming, non-recursive) parser.

Scripts, styles, templates and hidden elements (`hidden`, `aria-hidden="true"`,
`display:none` / `visibility:hidden` inline styles) are dropped; headings start
sections; block elements break lines. Deeply nested or unclosed markup costs
nothing extra because the parser keeps an explicit stack.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from chatbot.errors import IngestError
from ingestion.documents import Document
from ingestion.loaders.base import LoadOptions, assemble, clean_block
from ingestion.loaders.text import read_text

_DROP = {"script", "style", "template", "noscript", "svg", "math", "iframe", "object", "canvas"}
_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
}  # fmt: skip
_BLOCK = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "li", "ul", "ol",
    "table", "tr", "td", "th", "blockquote", "pre", "dd", "dt", "dl", "figure", "figcaption", "br",
    "hr", "address", "details", "summary", "caption",
}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.drop_depth: int | None = None  # stack depth where a dropped element began
        self.title = ""
        self.in_title = False
        self.heading: list[str] | None = None
        self.parts: list[tuple[str, list[str]]] = [("", [])]
        self.meta: dict[str, str] = {}

    def _dropped(self) -> bool:
        return self.drop_depth is not None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta" and not self._dropped():
            named = dict(attrs)
            name = (named.get("name") or named.get("property") or "").lower()
            if name in ("citation_title", "dc.title", "citation_pmid", "citation_doi", "citation_date"):
                self.meta[name] = named.get("content") or ""
        if tag in _VOID:
            if tag in _BLOCK and not self._dropped():
                self.parts[-1][1].append("\n")
            return
        self.stack.append(tag)
        if self._dropped():
            return
        named = dict(attrs)
        hidden = (
            tag in _DROP
            or "hidden" in named
            or (named.get("aria-hidden") or "").strip().lower() == "true"
            or bool(_HIDDEN_STYLE.search(named.get("style") or ""))
        )
        if tag == "title":
            self.in_title = True
            return
        if hidden:
            self.drop_depth = len(self.stack)
            return
        if tag in _HEADINGS:
            self.heading = []
        elif tag in _BLOCK:
            self.parts[-1][1].append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or tag not in self.stack:
            return
        while self.stack:
            top = self.stack.pop()
            depth = len(self.stack) + 1
            if self.drop_depth is not None and depth <= self.drop_depth:
                self.drop_depth = None
            elif self.drop_depth is None:
                self._close(top)
            if top == tag:
                break

    def _close(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in _HEADINGS and self.heading is not None:
            text = " ".join("".join(self.heading).split())
            self.heading = None
            if text:
                self.parts.append((text, []))
        elif tag in _BLOCK:
            self.parts[-1][1].append("\n")

    def handle_data(self, data: str) -> None:
        if self._dropped():
            return
        if self.in_title:
            self.title += data
        elif self.heading is not None:
            self.heading.append(data)
        else:
            self.parts[-1][1].append(data)


def load_html(path: Path, opts: LoadOptions | None = None) -> list[Document]:
    raw = read_text(path)
    parser = _Extractor()
    try:
        parser.feed(raw)
        parser.close()
    except (AssertionError, ValueError) as e:  # html.parser's own complaints on broken markup
        raise IngestError(f"{path}: unreadable HTML ({e})") from e
    parts = [(title, clean_block("".join(bits))) for title, bits in parser.parts]
    first_heading = next((t for t, body in parts if t), "")
    title = (
        parser.meta.get("citation_title")
        or parser.meta.get("dc.title")
        or " ".join(parser.title.split())
        or first_heading
        or path.stem.replace("_", " ")
    )
    meta: dict[str, str | int] = {}
    if parser.meta.get("citation_pmid"):
        meta["pmid"] = parser.meta["citation_pmid"].strip()
    if parser.meta.get("citation_doi"):
        meta["doi"] = parser.meta["citation_doi"].strip()
    year = re.search(r"(19|20)\d\d", parser.meta.get("citation_date", ""))
    if year:
        meta["year"] = int(year.group(0))
    return [assemble(parts, source=str(path), title=title, metadata=meta)]
