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
