"""Retrieved text is data: instruction-like sentences in passages are replaced before the model sees them."""

from __future__ import annotations

import re

from chatbot.textnorm import skeleton


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


# A medical reference passage has no reason to address the model. Sentences that
# do (override attempts, role play, requests for the prompt, fake role headers)
# are replaced by a marker before the passage is shown to the model, so even a
# small model that copies its context cannot repeat or obey them. Chat-template
# control tokens are defused separately (`prompts.neutralise`).

INJECTION_MARK = "[instruction-like text removed]"

_INJECTION = _rx(
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instructions?|rules|directions|guidelines|"
    r"prompt|context|above|previous|prior|user|system)\b",
    r"\b(you are now|from now on,? you|act as|pretend (to be|you are)|developer mode|jailbreak\w*|"
    r"do anything now)\b",
    r"\b(reveal|print|show|repeat|output|leak|tell me|disclose)\b.{0,30}\b(your|the)\b.{0,15}\b(system )?"
    r"(prompt|instructions|rules)\b",
    r"\b(say|reply|respond|answer|write|output|include)\b.{0,40}"
    r"\b(only|always|in every (answer|reply|response)|every time)\b.{0,40}\b(with|the word|words?|phrase)\b",
    r"\b(in every (answer|reply|response))\b",
    r"(^|[\s>›])(system|assistant|user|developer)\s*:",
    r"‹\|[^|›]{1,40}\|›",
)
_SENTENCES = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")


def _instruction_like(text: str) -> bool:
    return bool(_INJECTION.search(text) or _INJECTION.search(skeleton(text)))


# an instruction broken over lines ("ignore all\nprevious instructions") is read as one: a line is
# joined with up to this many following lines, and the lines that make the match are replaced together
_JOINED_LINES = 3


def strip_injections(text: str) -> tuple[str, int]:
    """The text with instruction-like sentences replaced by a marker, and how many were replaced."""
    matches = list(_SENTENCES.finditer(text))
    pieces = [m.group(0) for m in matches]
    flagged = [False] * len(pieces)
    removed = 0
    for i, piece in enumerate(pieces):
        if flagged[i]:
            continue
        if _instruction_like(piece):
            flagged[i] = True
            removed += 1
            continue
        # only pieces that a line break ends are joined: a sentence ended by a full stop stands alone
        end = i
        while end + 1 < len(pieces) and end - i < _JOINED_LINES and pieces[end].endswith("\n"):
            end += 1
            if _instruction_like(pieces[end]):
                break  # that line is an instruction of its own, not the end of this one
            if _instruction_like(" ".join(p.strip() for p in pieces[i : end + 1])):
                flagged[i : end + 1] = [True] * (end + 1 - i)
                removed += 1
                break
    out, last = [], 0
    for match, bad in zip(matches, flagged, strict=True):
        out.append(text[last : match.start()])  # what no sentence covers (a lone "." or blank line)
        piece = match.group(0)
        out.append(f" {INJECTION_MARK} " + ("\n" if piece.endswith("\n") else "") if bad else piece)
        last = match.end()
    out.append(text[last:])
    cleaned = re.sub(rf"(?:\s*{re.escape(INJECTION_MARK)})+", f" {INJECTION_MARK}", "".join(out))
    return cleaned.strip(), removed
