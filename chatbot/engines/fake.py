"""A deterministic engine for tests: scripted replies, or an echo of the evidence."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Sequence

from chatbot.engines.base import ChatMessage, GenerationParams

_PASSAGE = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)


class FakeEngine:
    """Replies from a queue (`enqueue`), else quotes the first numbered passage
    of the last message with its citation.

    Every call is recorded in `calls` so tests can inspect the prompt.
    """

    name = "fake"
    quantization = "none"

    def __init__(self, replies: Sequence[str] = ()) -> None:
        self._replies: deque[str] = deque(replies)
        self.calls: list[list[ChatMessage]] = []

    def enqueue(self, *replies: str) -> None:
        self._replies.extend(replies)

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        self.calls.append(list(messages))
        reply = self._replies.popleft() if self._replies else self._default(messages)
        reply = reply[: params.max_new_tokens * 8]
        yield from re.findall(r"\S+\s*", reply)

    @staticmethod
    def _default(messages: Sequence[ChatMessage]) -> str:
        match = _PASSAGE.search(messages[-1].content) if messages else None
        if not match:
            return "I could not find this in the sources."
        sentence = re.split(r"(?<=[.!?])\s", match.group(2).strip(), maxsplit=1)[0]
        return f"{sentence} [{match.group(1)}]"
