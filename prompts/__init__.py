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
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from chatbot.errors import MedchatError

if TYPE_CHECKING:
    from chatbot.engines.base import ChatMessage
    from chatbot.settings import PromptSettings

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent
SYSTEM_PARTS = ("persona", "task", "format", "tone")
PARTS = (*SYSTEM_PARTS, "exemplar", "context")
EXEMPLAR_SPLIT = "=== answer ==="

_VERSION = re.compile(r"\A---\s*\nversion:\s*(\d+)\s*\n---\s*(?:\n|\Z)")
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


def _read_part(part: str, name: str) -> tuple[int, str]:
    if part not in PARTS:
        raise PromptError(f"unknown prompt part '{part}' (parts: {', '.join(PARTS)})")
    path = PROMPTS_DIR / part / f"{name}.md"
    if not path.is_file():
        raise PromptError(
            f"no {part} prompt named '{name}' ({path} is missing); "
            f"available: {', '.join(available(part)) or 'none'}"
        )
    text = path.read_text(encoding="utf-8")
    match = _VERSION.match(text)
    if not match:
        raise PromptError(f"{path} must start with a `---` / `version: N` / `---` header")
    return int(match.group(1)), text[match.end() :].strip()


def load_part(part: str, name: str) -> str:
    """The text of one prompt part, without its version header."""
    return _read_part(part, name)[1]


def part_version(part: str, name: str) -> int:
    """The version a part file declares; bump it whenever its wording changes."""
    return _read_part(part, name)[0]


def presets() -> dict[str, dict[str, str]]:
    """The named part combinations in prompts/presets.toml."""
    import tomllib

    data = tomllib.loads((PROMPTS_DIR / "presets.toml").read_text(encoding="utf-8"))
    return {name: {k: str(v) for k, v in table.items()} for name, table in data.items()}


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

    preset: str = ""

    @classmethod
    def from_preset(cls, name: str, **overrides: str | None) -> PromptVariant:
        table = presets().get(name)
        if table is None:
            raise PromptError(f"no prompt preset named '{name}'; presets: {', '.join(sorted(presets()))}")
        parts = {part: table[part] for part in PARTS if part in table}
        parts.update({part: value for part, value in overrides.items() if value is not None})
        return cls(preset=name, **parts)

    @classmethod
    def from_settings(cls, prompts: PromptSettings, *, preset: str | None = None) -> PromptVariant:
        """The settings' preset (or `preset`, as `medchat ask --preset`) and their part overrides."""
        return cls.from_preset(preset or prompts.preset, **{part: getattr(prompts, part) for part in PARTS})

    def as_dict(self) -> dict[str, str]:
        """Provenance: the preset and each part as `name@version`."""
        named = {part: f"{getattr(self, part)}@{part_version(part, getattr(self, part))}" for part in PARTS}
        return {"preset": self.preset, **named}


def format_passages(passages: Sequence[PassageLike]) -> str:
    # One line per passage, text only: small models copy titles and file names
    # into the answer when they are shown; the sources list shows them instead.
    from chatbot.safety.injection import strip_injections

    lines = []
    for n, p in enumerate(passages, start=1):
        text, _ = strip_injections(neutralise(p.text))
        lines.append(f"[{n}] {' '.join(text.split())}")
    return "\n".join(lines)


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


def rebuild_prompt(
    query: str, passages: Sequence[str], variant: Mapping[str, str], prompt_hash: str
) -> list[dict[str, str]] | None:
    """The messages `build_prompt` made for a recorded answer (its query, passage texts, variant as
    `part@version` and hash), or None when they no longer hash the same (a prompt file or the passage
    formatting changed since) or cannot be built. The preference store keeps them with each
    response; the export rebuilds them for rows stored without."""
    from types import SimpleNamespace

    if not prompt_hash or not query:
        return None
    try:
        parts = {p: str(v).split("@", 1)[0] for p, v in variant.items() if p in PARTS}
        built = build_prompt(query, [SimpleNamespace(text=t) for t in passages], PromptVariant(**parts))
    except (PromptError, TypeError, ValueError) as e:
        log.info("cannot rebuild a prompt (%s)", e)
        return None
    if built.hash != prompt_hash:
        return None
    return [{"role": m.role, "content": m.content} for m in built.messages]
