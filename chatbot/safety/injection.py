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


def strip_injections(text: str) -> tuple[str, int]:
    """The text with instruction-like sentences replaced by a marker, and how many were replaced."""
    removed = 0

    def visit(match: re.Match[str]) -> str:
        nonlocal removed
        sentence = match.group(0)
        if _INJECTION.search(sentence) or _INJECTION.search(skeleton(sentence)):
            removed += 1
            return f" {INJECTION_MARK} " + ("\n" if sentence.endswith("\n") else "")
        return sentence

    cleaned = _SENTENCES.sub(visit, text)
    cleaned = re.sub(rf"(?:\s*{re.escape(INJECTION_MARK)})+", f" {INJECTION_MARK}", cleaned)
    return cleaned.strip(), removed
