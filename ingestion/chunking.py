"""Token-bounded chunking that respects section boundaries.

Sizes are counted in the embedder's own word pieces, so no chunk is silently
truncated by the encoder. A chunk never spans two sections; inside a section,
whole sentences are packed greedily and the last sentences of one chunk are
repeated at the start of the next (the overlap). A single sentence longer than
a chunk is cut at word-piece boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ingestion.documents import Chunk, Document, Section, chunk_id

if TYPE_CHECKING:
    from chatbot.settings import Settings

# Units break after a sentence end, at a blank line, and before a list item or heading.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n[ \t]*\n\s*|\n(?=[ \t]*(?:[-*+]|\d+[.)]|#+)[ \t])")


class TokenCounter(Protocol):
    def count(self, texts: Sequence[str]) -> list[int]: ...

    def split(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        """Character spans of consecutive pieces of at most `max_tokens` tokens."""
        ...


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


class WordPieceCounter:
    """Counts tokens with the embedder's own `tokenizer.json` (no torch needed)."""

    def __init__(self, tokenizer_file: str) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(tokenizer_file)
        self._tok.no_truncation()
        self._tok.no_padding()

    def count(self, texts: Sequence[str]) -> list[int]:
        encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encs]

    def split(self, text: str, max_tokens: int) -> list[tuple[int, int]]:
        offsets = self._tok.encode(text, add_special_tokens=False).offsets
        spans = []
        for i in range(0, len(offsets), max_tokens):
            piece = offsets[i : i + max_tokens]
            end = offsets[i + max_tokens][0] if i + max_tokens < len(offsets) else len(text)
            spans.append((piece[0][0] if i else 0, end))
        return spans or [(0, len(text))]


def _units(text: str, section: Section) -> Iterator[tuple[int, int]]:
    """Sentence-like spans of a section, its heading line left out."""
    begin = section.start
    if section.title:
        newline = text.find("\n", begin, section.end)
        begin = section.end if newline < 0 else newline + 1
    cuts = [m.span() for m in _BOUNDARY.finditer(text, begin, section.end)]
    starts = [begin] + [e for _, e in cuts]
    ends = [s for s, _ in cuts] + [section.end]
    for start, end in zip(starts, ends, strict=True):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            yield start, end


class Chunker:
    def __init__(self, counter: TokenCounter, chunk_tokens: int, overlap_tokens: int) -> None:
        if overlap_tokens >= chunk_tokens:
            raise ValueError("overlap_tokens must be smaller than chunk_tokens")
        self.counter = counter
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> Chunker:
        """The chunker ingestion uses: the embedder's own word pieces, the settings' sizes."""
        from ingestion.embedding import tokenizer_file

        counter = WordPieceCounter(tokenizer_file(settings.embedding.model))
        return cls(counter, settings.ingestion.chunk_tokens, settings.ingestion.chunk_overlap_tokens)

    def chunk(self, doc: Document) -> list[Chunk]:
        sections = doc.sections or [Section("", 0, len(doc.text))]
        chunks: list[Chunk] = []
        for section in sections:
            heading = " > ".join(p for p in (doc.title, section.title) if p)
            if section.title and section.title == doc.title:
                heading = doc.title
            budget = self.chunk_tokens - (self.counter.count([heading + "\n"])[0] if heading else 0)
            budget = max(budget, self.chunk_tokens // 2)
            for start, end in self._pack(doc.text, section, budget):
                text = doc.text[start:end]
                chunks.append(
                    Chunk(
                        id=chunk_id(doc.key, text, start),
                        text=text,
                        embed_text=f"{heading}\n{text}" if heading else text,
                        source=doc.source,
                        title=doc.title,
                        section=section.title,
                        char_start=start,
                        char_end=end,
                        metadata=dict(doc.metadata),
                    )
                )
        return chunks

    def _pack(self, text: str, section: Section, budget: int) -> Iterator[tuple[int, int]]:
        spans = list(_units(text, section))
        if not spans:
            return
        counts = self.counter.count([text[s:e] for s, e in spans])
        units: list[_Unit] = []
        for (s, e), n in zip(spans, counts, strict=True):
            if n <= budget:
                units.append(_Unit(s, e, n))
                continue
            for ps, pe in self.counter.split(text[s:e], budget):
                units.append(_Unit(s + ps, s + pe, budget))
        window: list[_Unit] = []
        total = 0
        for unit in units:
            if window and total + unit.tokens > budget:
                yield window[0].start, window[-1].end
                # keep the trailing units that fit in the overlap
                kept: list[_Unit] = []
                kept_total = 0
                for u in reversed(window):
                    if (
                        kept_total + u.tokens > self.overlap_tokens
                        or kept_total + u.tokens + unit.tokens > budget
                    ):
                        break
                    kept.insert(0, u)
                    kept_total += u.tokens
                window, total = kept, kept_total
            window.append(unit)
            total += unit.tokens
        if window:
            yield window[0].start, window[-1].end
