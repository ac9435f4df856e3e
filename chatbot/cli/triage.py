"""`medchat triage "message"`: the triage decision for one message and why (for reviewing the gate);
`medchat triage --file IN.jsonl -o OUT.jsonl`: one decision per line, for a whole set."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from chatbot.cli import PathArg, _settings, _setup_logging, _user_errors, main

if TYPE_CHECKING:
    from chatbot.settings import Settings
    from chatbot.triage import Triage, TriageResult

TEXT_FIELDS = ("text", "question", "message")
"""Where a line's message is read from, the first present: `text` as in data/triage, `question` as in
`medchat batch` files."""

BATCH = 64
"""Messages embedded together: one encoder call for many messages is several times faster."""


@main.command()
@click.argument("message", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print the decision and its reasons as JSON.")
@click.option(
    "--file", "source", type=PathArg(dir_okay=False, allow_dash=True, path_type=Path), default=None,
    help='Triage every line of this JSON Lines file ({"text": ...}, or "question"/"message"; - for stdin) '
    "instead of MESSAGE.",
)  # fmt: skip
@click.option(
    "-o", "--output", type=PathArg(dir_okay=False, allow_dash=True, path_type=Path), default="-",
    show_default=True, help="Where --file's decisions go (JSON Lines).",
)  # fmt: skip
@click.pass_context
@_user_errors
def triage(ctx: click.Context, message: str, as_json: bool, source: Path | None, output: Path) -> None:
    """Say whether MESSAGE is an emergency, urgent or routine, and why: the rule that fired, or the
    classifier's probability and the nearest labelled examples. Nothing is retrieved or generated.

    With --file, each line of the file is decided the same way and written to --output as one JSON
    line: line, text, level, category, graded, why (the reasons), probability, decided_by, evidence
    (what the category rests on), language, and input (the line's other fields). A bad line (not
    JSON, no text, too long) is reported on stderr with its number and skipped; the rest goes on."""
    from chatbot.errors import EmptyQuestionError

    if source is not None and message.strip():
        raise click.UsageError("give a MESSAGE or --file, not both")
    if source is None and not message.strip():
        raise EmptyQuestionError(
            'the message is empty: try `medchat triage "my dad\'s face has dropped on one side"`'
        )
    settings = _settings()
    _setup_logging(settings, ctx.obj["verbose"])
    from chatbot.textnorm import normalise
    from chatbot.triage import Triage

    gate = Triage(settings.safety).load()
    if source is not None:
        _triage_file(gate, settings, source, output)
        return
    result = gate.assess(normalise(message).strip())
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    name = {"emergency": "EMERGENCY", "urgent": "URGENT (see a doctor today)", "routine": "routine"}[
        result.level
    ]
    if result.graded:
        name = "URGENT (answered, with what to watch for: an emergency is not ruled out)"
    click.echo(f"{name}" + (f": {result.category}" if result.category else ""))
    if result.probabilities:
        probs = ", ".join(f"{k} {v:.2f}" for k, v in result.probabilities.items())
        click.echo(f"classifier probabilities: {probs}")
    click.echo("why:")
    for reason in result.reasons:
        if not reason.startswith("nearest labelled examples"):
            click.echo(f"  - {reason}")
    if result.nearest:
        click.echo("nearest labelled examples:")
        for n in result.nearest:
            click.echo(f"  {n.similarity:.2f} {n.level:<9} [{n.category}] {n.text}")


def _text_of(row: Any, limit: int) -> tuple[str, dict[str, Any], str]:
    """The message of one parsed line, the line's other fields, and why it is unusable ("" if it is
    not): a JSON string is the message itself."""
    if isinstance(row, str):
        text, rest = row, {}
    elif isinstance(row, dict):
        key = next((k for k in TEXT_FIELDS if k in row), None)
        if key is None:
            return "", {}, f"no message: give one of the fields {', '.join(TEXT_FIELDS)}"
        text, rest = row[key], {k: v for k, v in row.items() if k != key}
        if not isinstance(text, str):
            return "", {}, f"the field {key!r} is not text"
    else:
        return "", {}, "not a JSON object or string"
    if not text.strip():
        return "", {}, "the message is empty"
    if len(text) > limit:
        return "", {}, f"the message is {len(text):,} characters long, over the limit of {limit:,}"
    return text, rest, ""


def _rows(handle: IO[bytes], limit: int) -> Iterator[tuple[int, str, dict[str, Any], str]]:
    """(line number, message, other fields, why it is skipped) for each non-blank line."""
    from chatbot.cli.jsonlines import records
    from chatbot.textnorm import normalise

    for n, row, why in records(handle):
        if why:
            yield n, "", {}, why
            continue
        text, rest, why = _text_of(row, limit)
        yield n, normalise(text).strip() if text else "", rest, why


def decision(n: int, text: str, rest: dict[str, Any], result: TriageResult) -> dict[str, Any]:
    """One output line: the decision, why, and what the category rests on."""
    return {
        "line": n,
        "text": text,
        "level": result.level,
        "category": result.category,
        "graded": result.graded,
        "why": result.reasons,
        "probability": round(result.probability, 4),
        "decided_by": result.decided_by,
        "evidence": result.evidence.as_dict(),
        "language": result.language,
        "input": rest,
    }


def _triage_file(gate: Triage, settings: Settings, source: Path, output: Path) -> None:
    if str(source) != "-" and not source.exists():
        raise click.BadParameter(f"{source} does not exist: give a JSON Lines file", param_hint="--file")
    inp = sys.stdin.buffer if str(source) == "-" else source.open("rb")
    out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8")
    counts = {"emergency": 0, "urgent": 0, "routine": 0}
    graded = bad = 0
    pending: list[tuple[int, str, dict[str, Any]]] = []

    def flush() -> None:
        nonlocal graded
        if not pending:
            return
        vectors = gate.embed([text for _, text, _ in pending])
        for (n, text, rest), vector in zip(pending, vectors, strict=True):
            result = gate.assess(text, vector)
            counts[result.level] += 1
            graded += result.graded
            out.write(json.dumps(decision(n, text, rest, result), ensure_ascii=False) + "\n")
        out.flush()
        pending.clear()

    try:
        for n, text, rest, why in _rows(inp, settings.limits.question_chars):
            if why:
                bad += 1
                click.echo(f"line {n}: skipped: {why}", err=True)
                continue
            pending.append((n, text, rest))
            if len(pending) >= BATCH:
                flush()
        flush()
    finally:
        if inp is not sys.stdin.buffer:
            inp.close()
        if out is not sys.stdout:
            out.close()
    done = sum(counts.values())
    click.echo(
        f"triaged {done} message(s): {counts['emergency']} emergency, {counts['urgent']} urgent "
        f"({graded} of them graded: answered with what to watch for), {counts['routine']} routine; "
        f"{bad} line(s) skipped",
        err=True,
    )
    if bad and not done:
        sys.exit(1)
