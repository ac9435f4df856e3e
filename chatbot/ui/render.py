"""Show documents and model output as text: only medchat's own markup reaches the page.

Passages come from documents anyone may have written, and the model copies from them, so neither
may carry live markup: a Markdown image would make the browser fetch a remote URL (tracking), a link
or an HTML element could phish or cover the page. Everything they contain is escaped, Markdown
syntax included; medchat adds its own emphasis and citation marks around the escaped text.
The page is also served with `CONTENT_SECURITY_POLICY`, so a remote image or frame that slipped
through would still not load.
"""

from __future__ import annotations

import html
import re

from chatbot.grounding import NOT_IN_SOURCES_MARK

# no remote images, frames, objects or form targets; scripts and styles from the app itself
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; "
    "font-src 'self' data:; "
    "media-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; "
    "worker-src 'self' blob:; "
    "frame-src 'none'; child-src 'self' blob:; object-src 'none'; "
    "form-action 'self'; base-uri 'self'; frame-ancestors 'self'"
)

# every character Markdown, HTML, math or link detection could read as syntax becomes an entity
# (with `<` and `:` escaped no tag, URL or link definition can form, so quotes and `/` may stay)
_MARKDOWN_SYNTAX = re.compile(r"[\\`*_{}\[\]()#+\-.!|<>&:~=$@]")
_CITATION = re.compile(r"\[(\d{1,3})\]")
# the one piece of Markdown small models write all the time; shown as emphasis, not as asterisks
_BOLD = re.compile(r"\*\*(?=\S)([^*\n]{1,200}?)(?<=\S)\*\*")


def markdown_text(text: str, *, links: bool = False) -> str:
    """`text` as Markdown that renders exactly as the characters given, with nothing live.

    Newlines stay (paragraphs and line breaks read as the model wrote them); a URL stays visible
    but is not a link, an image is not fetched, `<b>` is shown as the four characters. With `links`,
    each citation mark `[n]` is medchat's own link to source n (`cite_link`), and the grounding
    check's inline mark is shown as a label.
    """
    out = []
    for b, piece in enumerate(_BOLD.split(text)):  # odd pieces were between ** and **
        parts = _CITATION.split(piece)  # citation marks stay readable: "[2]" alone can form no link
        inner = "".join(
            (cite_link(int(part)) if links else f"[{part}]")
            if n % 2
            else _MARKDOWN_SYNTAX.sub(lambda m: f"&#{ord(m.group())};", part)
            for n, part in enumerate(parts)
        )
        out.append(f"**{inner}**" if b % 2 else inner)
    text = "".join(out)
    if links:
        text = text.replace(_ESCAPED_MARK, NOT_IN_SOURCES_HTML)
    return text.replace("\n", "  \n")


def cite_link(n: int) -> str:
    """A citation mark that opens source n in the Sources panel (the page script `CITE_JS` does it)."""
    return f'<a class="cite" href="#src-{n}" title="Show source {n}">[{n}]</a>'


_ESCAPED_MARK = "".join(f"&#{ord(ch)};" if _MARKDOWN_SYNTAX.match(ch) else ch for ch in NOT_IN_SOURCES_MARK)
NOT_IN_SOURCES_HTML = '<span class="not-in-sources">not in your sources</span>'


def _escaped(text: str) -> str:
    return _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=True))


def highlighted(text: str, spans: list[str]) -> str:
    """`text` as escaped HTML with each of `spans` (verbatim pieces of it) in a `<mark>`."""
    marks: list[tuple[int, int]] = []
    for span in spans:
        at = text.find(span) if span else -1
        if at >= 0:
            marks.append((at, at + len(span)))
    marks.sort()
    out, pos = [], 0
    for a, b in marks:
        if a < pos:
            a = pos
        if a >= b:
            continue
        out.append(_escaped(text[pos:a]))
        out.append(f"<mark>{_escaped(text[a:b])}</mark>")
        pos = b
    out.append(_escaped(text[pos:]))
    escaped = "".join(out)
    return paragraphs(escaped)


def html_text(text: str, *, citations: bool = True) -> str:
    """`text` as escaped HTML, line breaks kept; citation marks like [2] set in medchat's own style."""
    escaped = _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=True))  # no tag survives escape
    if citations:
        escaped = _CITATION.sub(r'<span class="cite">[\1]</span>', escaped)
    escaped = escaped.replace(html.escape(NOT_IN_SOURCES_MARK), NOT_IN_SOURCES_HTML)
    return paragraphs(escaped)


def paragraphs(escaped: str) -> str:
    """Escaped HTML text in paragraphs at blank lines, single line breaks kept."""
    parts = [p.replace("\n", "<br>") for p in re.split(r"\n\s*\n", escaped.strip())]
    return "".join(f"<p>{p}</p>" for p in parts if p)


def clip(text: str, limit: int) -> str:
    """At most about `limit` characters, cut at a word boundary, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + " …"
