"""Size limits on what one person may send, checked before any work is done on it.

The limits live in `Settings.limits`; each refusal is one sentence naming the
input, its size, the limit and the setting that raises it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatbot.errors import InputTooLargeError

if TYPE_CHECKING:
    from chatbot.settings import LimitsSettings


def _refuse(what: str, size: int, limit: int, setting: str, remedy: str) -> InputTooLargeError:
    return InputTooLargeError(
        f"{what} is {size:,} characters long, over the limit of {limit:,}: {remedy} "
        f"(an admin can raise MEDCHAT_LIMITS__{setting.upper()})"
    )


def check_question(question: str, limits: LimitsSettings, *, what: str = "the question") -> None:
    if len(question) > limits.question_chars:
        raise _refuse(
            what, len(question), limits.question_chars, "question_chars", "shorten it to the question itself"
        )


def check_rationale(rationale: str, limits: LimitsSettings) -> None:
    if len(rationale) > limits.rationale_chars:
        raise _refuse(
            "the rationale",
            len(rationale),
            limits.rationale_chars,
            "rationale_chars",
            "shorten it; your vote is not saved until you submit again",
        )


def load_yaml(text: str, source: object) -> object:
    """YAML read with `safe_load`'s types but no aliases (`*name`, `<<: *name`), so a few hundred bytes
    cannot expand into gigabytes (a "billion laughs" file) and nesting too deep for the parser is one
    sentence too. `source` names the file in the messages; raises `ConfigError`."""
    import yaml

    from chatbot.errors import ConfigError

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"{source}, line {mark.line + 1}: YAML aliases (*name) are not accepted, since a small "
                    "file could expand without bound through them: write the value out in full"
                )
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliases)  # a SafeLoader, without aliases
    except yaml.YAMLError as e:
        raise ConfigError(f"{source} is not valid YAML: {e}") from e
    except RecursionError as e:
        raise ConfigError(f"{source}: nested too deeply to read as YAML: flatten it") from e
