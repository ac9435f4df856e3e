"""The generation interface every engine implements."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from chatbot.errors import PromptTooLongError

if TYPE_CHECKING:
    from chatbot.settings import GenerationSettings

Role = Literal["system", "user", "assistant"]

_BACKGROUND: ContextVar[bool] = ContextVar("medchat_background", default=False)


@contextmanager
def background() -> Iterator[None]:
    """Mark generation in this block as background work: an engine that serves one request at a time
    gives the model to a waiting person first (the labelling page's prepare worker uses this)."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


def in_background() -> bool:
    return _BACKGROUND.get()


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """How to sample; `temperature == 0` means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)
    grounding: str = ""
    """What the user reads: `extractive`, `checked` or `free` (`GenerationSettings.grounding`);
    empty: the settings'. Engines ignore it; the chain acts on it."""

    @classmethod
    def from_settings(cls, gen: GenerationSettings) -> GenerationParams:
        return cls(
            max_new_tokens=gen.max_new_tokens,
            temperature=gen.temperature,
            top_p=gen.top_p,
            top_k=gen.top_k,
            repeat_penalty=gen.repeat_penalty,
            seed=gen.seed,
            grounding=gen.grounding,
        )


@runtime_checkable
class Engine(Protocol):
    """Something that turns chat messages into a stream of text pieces."""

    name: str
    """Model identity for provenance, e.g. `llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf`."""

    quantization: str
    """How the weights are stored, e.g. `Q4_1`, `nf4`, `none`."""

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        """Yield the answer piece by piece; closing the iterator stops generation."""
        ...


def complete(engine: Engine, messages: Sequence[ChatMessage], params: GenerationParams) -> str:
    """The whole answer at once."""
    return "".join(engine.stream(messages, params))


@runtime_checkable
class TokenCounter(Protocol):
    """An engine that knows its context window and can measure a prompt in its own tokens."""

    n_ctx: int

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens the messages take once rendered with the model's chat template."""
        ...


def approx_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """A deliberately generous estimate (3 characters a token, 8 tokens of template per message)
    for engines that cannot tokenize locally."""
    return sum(math.ceil(len(m.content) / 3) + 8 for m in messages)


def fit_passages(
    build: Callable[[int], Sequence[ChatMessage]],
    n_passages: int,
    engine: object,
    max_new_tokens: int,
) -> int:
    """The largest `n <= n_passages` whose prompt `build(n)` (made of the question, the
    instructions and the `n` best-ranked passages) leaves room for `max_new_tokens` in the
    engine's context window.

    Passages are dropped from the end (lowest rank first); the question and instructions are
    never cut. Engines that cannot count tokens keep every passage. Raises
    `PromptTooLongError` when even the prompt without passages does not fit.
    """
    if not isinstance(engine, TokenCounter):
        return n_passages
    budget = engine.n_ctx - max_new_tokens

    def fits(n: int) -> bool:
        return engine.prompt_tokens(build(n)) <= budget

    if fits(n_passages):
        return n_passages
    if not fits(0):
        need = engine.prompt_tokens(build(0))
        raise PromptTooLongError(
            f"the question and instructions take {need} tokens, but the context window of {engine.n_ctx} "
            f"leaves {budget} after {max_new_tokens} answer tokens: raise MEDCHAT_GENERATION__N_CTX, "
            "lower MEDCHAT_GENERATION__MAX_NEW_TOKENS, or ask a shorter question"
        )
    lo, hi = 0, n_passages  # fits(lo) and not fits(hi); prompt length grows with n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


class StopFilter:
    """Cuts a stream of text pieces at the first stop string, holding back any tail that
    could be the start of one so that no part of a stop string is ever shown."""

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = [s for s in stop if s]
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that is safe to show after adding `piece`."""
        if self.stopped or not self.stop:
            return "" if self.stopped else piece
        text = self._held + piece
        cuts = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if cuts:
            self.stopped = True
            self._held = ""
            return text[: min(cuts)]
        keep = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    keep = max(keep, k)
                    break
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """Whatever was held back, once the stream has ended without a stop string."""
        held, self._held = self._held, ""
        return "" if self.stopped else held
