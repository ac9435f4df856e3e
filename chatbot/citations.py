"""Finding, checking and cleaning numbered citations like [1] or [2, 3]."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CITE = re.compile(r"\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)


@dataclass(frozen=True)
class CitationCheck:
    text: str
    """The answer with invalid citation numbers removed."""
    cited: list[int]
    """Valid passage numbers, in order of first citation."""
    invalid: list[int]
    """Numbers that pointed at no passage and were removed."""


def check_citations(answer: str, n_passages: int) -> CitationCheck:
    cited: list[int] = []
    invalid: list[int] = []

    urls = [m.span() for m in _URL.finditer(answer)]

    def fix(match: re.Match[str]) -> str:
        if any(a <= match.start() < b for a, b in urls):
            return match.group(0)  # part of a link, not a citation
        numbers = [int(x) for x in re.findall(r"\d+", match.group(1))]
        good = [n for n in numbers if 1 <= n <= n_passages]
        invalid.extend(n for n in numbers if n not in good)
        cited.extend(n for n in good if n not in cited)
        return f"[{', '.join(str(n) for n in good)}]" if good else ""

    text = _CITE.sub(fix, answer)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)  # space left before punctuation by a removed cite
    return CitationCheck(text.strip(), cited, invalid)
