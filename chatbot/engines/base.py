"""The generation interface every engine implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from chatbot.settings import GenerationSettings

Role = Literal["system", "user", "assistant"]


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

    @classmethod
    def from_settings(cls, gen: GenerationSettings) -> GenerationParams:
        return cls(
            max_new_tokens=gen.max_new_tokens,
            temperature=gen.temperature,
            top_p=gen.top_p,
            top_k=gen.top_k,
            repeat_penalty=gen.repeat_penalty,
            seed=gen.seed,
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
