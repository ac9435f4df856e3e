"""Follow-up questions made standalone before retrieval.

"And for children?" cannot be retrieved on its own. A follow-up (a question
that opens with a connective, or is short and leans on a pronoun, or has
no content words of its own) is joined to the previous standalone
question, so the search sees the topic. Questions that stand on their own
pass through unchanged. This is deliberate, predictable string work: the
bundled 135M model is not reliable enough to rewrite queries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chatbot.attribution import content_words

_CONNECTIVE = re.compile(
    r"^\s*(and|or|but|also|so|then|what about|how about|what if|is it|are they|does it|do they|can it|"
    r"could it|should i|should they|for|in|with|without|during|after|before|same for|and if)\b",
    re.IGNORECASE,
)
_PRONOUN = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|him|her)\b", re.IGNORECASE)


def is_follow_up(question: str) -> bool:
    words = content_words(question)
    if _CONNECTIVE.match(question):
        return True
    if not words:
        return True
    return len(words) <= 3 and bool(_PRONOUN.search(question))


def standalone(question: str, previous: Sequence[str]) -> str:
    """The question as it should be searched, given the earlier standalone questions (oldest first)."""
    question = question.strip()
    if not previous or not is_follow_up(question):
        return question
    return f"{previous[-1].rstrip()} {question}"
