"""Prompt parts as reviewable files, and the code that assembles them.

Each part (persona, task, format, tone, exemplar, context) is a file
`prompts/<part>/<name>.md`. A variant names one file per part. Templates use
`{{ name }}` placeholders and are rendered strictly: a missing value is an
error, never an empty string.

Persona, task, format and tone make the system message. The exemplar is a
worked example shown as one earlier user/assistant turn (its file holds the
user's side, a line `=== answer ===`, then the answer). The context template
makes the final user message: the numbered passages and the question.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from chatbot.errors import MedchatError

if TYPE_CHECKING:
    from chatbot.engines.base import ChatMessage
    from chatbot.settings import PromptSettings

PROMPTS_DIR = Path(__file__).resolve().parent
SYSTEM_PARTS = ("persona", "task", "format", "tone")
PARTS = (*SYSTEM_PARTS, "exemplar", "context")
EXEMPLAR_SPLIT = "=== answer ==="

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Chat-template control tokens (ChatML, Llama 2/3, Mistral, Gemma) and role headers.
_CONTROL = re.compile(
    r"<\|[^|>]{1,40}\|>|</?s>|\[/?INST\]|<<\/?SYS>>|<start_of_turn>|<end_of_turn>",
    re.IGNORECASE,
)


class PromptError(MedchatError):
    """A prompt part is missing or a template variable has no value."""


class PassageLike(Protocol):
    @property
    def text(self) -> str: ...


def variables(template: str) -> set[str]:
    """The placeholder names a template uses."""
    return set(_PLACEHOLDER.findall(template))


def render(template: str, values: Mapping[str, str], *, name: str = "template") -> str:
    missing = variables(template) - set(values)
    if missing:
        raise PromptError(f"prompt {name} needs values for: {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def available(part: str) -> list[str]:
    return sorted(p.stem for p in (PROMPTS_DIR / part).glob("*.md"))


def load_part(part: str, name: str) -> str:
    if part not in PARTS:
        raise PromptError(f"unknown prompt part '{part}' (parts: {', '.join(PARTS)})")
    path = PROMPTS_DIR / part / f"{name}.md"
    if not path.is_file():
        raise PromptError(
            f"no {part} prompt named '{name}' ({path} is missing); "
            f"available: {', '.join(available(part)) or 'none'}"
        )
    return path.read_text(encoding="utf-8").strip()


def neutralise(text: str) -> str:
    """Retrieved text is data: defuse chat-template control tokens inside it."""
    return _CONTROL.sub(
        lambda m: m.group(0).replace("<", "‹").replace(">", "›").replace("[", "(").replace("]", ")"), text
    )


@dataclass(frozen=True)
class PromptVariant:
    """Which file each part comes from."""

    persona: str = "clinician_to_patient"
    task: str = "answer_with_citations"
    format: str = "short_then_details"
    tone: str = "plain_calm"
    exemplar: str = "cited_answer"
    context: str = "numbered_passages"

    @classmethod
    def from_settings(cls, prompts: PromptSettings) -> PromptVariant:
        return cls(**{part: getattr(prompts, part) for part in PARTS})

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def format_passages(passages: Sequence[PassageLike]) -> str:
    # One line per passage, text only: small models copy titles and file names
    # into the answer when they are shown; the sources list shows them instead.
    return "\n".join(f"[{n}] {' '.join(neutralise(p.text).split())}" for n, p in enumerate(passages, start=1))


def exemplar_turns(name: str) -> list[tuple[str, str]]:
    """The exemplar as (user, assistant) turns; an empty file means none."""
    text = load_part("exemplar", name)
    if not text:
        return []
    if EXEMPLAR_SPLIT not in text:
        raise PromptError(f"exemplar/{name}.md needs a line '{EXEMPLAR_SPLIT}' between question and answer")
    user, answer = text.split(EXEMPLAR_SPLIT, 1)
    return [(user.strip(), answer.strip())]


@dataclass(frozen=True)
class BuiltPrompt:
    messages: list[ChatMessage]
    hash: str
    variant: PromptVariant


def build_prompt(question: str, passages: Sequence[PassageLike], variant: PromptVariant) -> BuiltPrompt:
    """System message, the exemplar turn, then the passages and question."""
    from chatbot.engines.base import ChatMessage

    system = "\n\n".join(t for t in (load_part(p, getattr(variant, p)) for p in SYSTEM_PARTS) if t)
    user = render(
        load_part("context", variant.context),
        {"passages": format_passages(passages), "question": neutralise(question.strip())},
        name=f"context/{variant.context}",
    )
    messages = [ChatMessage("system", system)]
    for shown, answered in exemplar_turns(variant.exemplar):
        messages += [ChatMessage("user", shown), ChatMessage("assistant", answered)]
    messages.append(ChatMessage("user", user))
    digest = hashlib.sha256("\x00".join(f"{m.role}:{m.content}" for m in messages).encode()).hexdigest()
    return BuiltPrompt(messages, digest[:16], variant)
