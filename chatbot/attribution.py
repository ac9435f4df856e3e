"""Post-hoc attribution: tie each sentence of an answer to the passage that supports it.

Small models often write a correct sentence without its `[n]`. A sentence
with no citation is given the number of the passage that contains most of
its content words, when that passage covers at least `min_support` of them
and every number in the sentence (a dose, a threshold) appears in it;
a sentence that no passage supports is reported as unsupported. Citations
the model wrote itself are kept, but a sentence whose figures appear in none
of the passages it cites ("above 180/200 mmHg [1]" where [1] says 140/90) is
reported as unsupported too: small models copy the shape of a threshold and
get its value wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# A sentence ends at . ! or ? followed by a space, a citation or the end: a full stop inside a URL
# ("https://example.org/m"), a decimal ("2.5 mg") or "e.g." does not end it, so no citation is
# ever inserted there.
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?]+(?=[^\s.!?\[]))+(?:[.!?]+|$)(?:\s*\[[\d,;\s]+\])*", re.MULTILINE)
_CITED = re.compile(r"\[\s*\d+\s*(?:[,;]\s*\d+\s*)*\]")
_WORD = re.compile(r"[a-z0-9][a-z0-9/.%-]*[a-z0-9%]|[a-z0-9]")
_STOP = frozenset(
    """
    a an and are as at be been but by can could do does for from has have how if in into is it its
    may might more most much no not of on or other should so some such than that the their them then
    there these they this those to too usually very was were what when where which while who will
    with would you your also about after before often only each any all one two why whom whose
    """.split()
)


def stem(word: str) -> str:
    """A light suffix strip so that "wheezing", "wheezes" and "wheeze" meet."""
    if len(word) <= 4 or not word.isalpha():
        return word
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("e", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    return word


def content_words(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and (len(w) > 2 or w.isdigit())}


_NAME = re.compile(r"(?<=[\s:(\"'*_])[A-Z][A-Za-z]*[a-z][A-Za-z]*")


def named(sentence: str) -> set[str]:
    """Capitalised words after a sentence's first word (names of drugs, tests, bodies), as content words."""
    first = sentence.strip().lstrip("*_#>-\"'( ")  # "**Summary**" starts the sentence: not a name
    return {stem(w.lower()) for w in _NAME.findall(first) if w.lower() not in _STOP}


@dataclass(frozen=True)
class Attribution:
    text: str
    """The answer with the added citations."""
    added: list[int]
    """Passage numbers cited by attribution, not by the model."""
    unsupported: list[str]
    """Sentences without a citation that no passage supports."""


def attribute(answer: str, passages: Sequence[str], min_support: float = 0.6) -> Attribution:
    vocab = [content_words(p) for p in passages]
    added: list[int] = []
    unsupported: list[str] = []

    def visit(match: re.Match[str]) -> str:
        sentence = match.group(0)
        marks = _CITED.findall(sentence)
        words = content_words(_CITED.sub(" ", sentence))
        numbers = {w for w in words if any(ch.isdigit() for ch in w)}
        if marks:
            cited = {int(n) for mark in marks for n in re.findall(r"\d+", mark)}
            given = set().union(*(vocab[n - 1] for n in cited if 1 <= n <= len(vocab)))
            if numbers and not numbers <= given:
                unsupported.append(sentence.strip())
            return sentence
        if len(words) < 3:  # "I hope this helps." says nothing to check; "The answer is: Doxywhise." does
            if any(not any(w in v for v in vocab) for w in numbers | named(sentence)):
                unsupported.append(sentence.strip())
            return sentence
        best, share = 0, 0.0
        for n, v in enumerate(vocab, start=1):
            if not numbers <= v:  # a figure the passage does not give is not supported by it
                continue
            s = len(words & v) / len(words)
            if s > share:
                best, share = n, s
        if share < min_support:
            unsupported.append(sentence.strip())
            return sentence
        if best not in added:
            added.append(best)
        body = sentence.rstrip()
        tail = sentence[len(body) :]
        end = len(body.rstrip(".!?"))
        return f"{body[:end]} [{best}]{body[end:]}{tail}"

    text = _SENTENCE.sub(visit, answer)
    return Attribution(text, added, unsupported)


# A phone number as models write them: an optional +, then 7 to 15 digits in at least three groups
# ("112-480-5697", "+44 20 7946 0958", "(555) 123 4567"). Doses, thresholds, ranges ("140/90",
# "2.0-3.0") have fewer digits or a slash; a year range is let through by `_YEARS`.
_PHONE = re.compile(r"(?<![\w/.,])\+?\(?\d{1,4}\)?(?:[ .-]\(?\d{1,5}\)?){2,5}(?![\w/])")
_YEARS = re.compile(r"^(19|20)\d\d\s*[-–]\s*(19|20)\d\d$")
INVENTED_NUMBER = "[phone number removed: it is not in the sources]"


def remove_invented_numbers(answer: str, passages: Sequence[str]) -> tuple[str, list[str]]:
    """`answer` with every phone number that no passage contains replaced by a note, and those numbers.

    A small model copies the shape of a helpline ("call 112-480-5697") and invents its digits; a
    person in trouble may dial it. Numbers the sources give are kept, compared digit for digit."""
    known = {re.sub(r"\D", "", m.group()) for p in passages for m in _PHONE.finditer(p)}
    removed: list[str] = []

    def check(m: re.Match[str]) -> str:
        number = m.group()
        digits = re.sub(r"\D", "", number)
        if not 7 <= len(digits) <= 15 or _YEARS.match(number.strip()) or digits in known:
            return number
        removed.append(number.strip())
        return INVENTED_NUMBER

    return _PHONE.sub(check, answer), removed
