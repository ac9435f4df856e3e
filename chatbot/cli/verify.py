"""`medchat verify`: audit any system's answers against their passages, sentence by sentence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from chatbot.cli import _user_errors, main
from chatbot.cli.jsonlines import records


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default="-",
    show_default=True, help="Where the verdicts go (JSON Lines).",
)  # fmt: skip
@_user_errors
def verify(source: Path, output: Path) -> None:
    """Check each answer in SOURCE (JSON Lines) against its passages, sentence by sentence.

    Each input line is {"answer": str, "passages": [str, ...]} (other fields are copied through).
    Each output line adds "sentences": [{sentence, verdict, passage, span, score, reason}], where
    verdict is supported, not_found or contradicted and passage is 1-based (null when none), and
    "counts" per verdict. A bad line is reported on stderr with its number and skipped; the rest goes on.
    """
    from chatbot.grounding import verify_record

    if str(source) != "-" and not source.exists():
        raise click.BadParameter(
            f"{source} does not exist: give a JSON Lines file of answers", param_hint="SOURCE"
        )
    inp = sys.stdin.buffer if str(source) == "-" else source.open("rb")
    out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8")
    done = bad = 0
    totals = {"supported": 0, "not_found": 0, "contradicted": 0}
    try:
        for n, record, why in records(inp):
            if why:
                bad += 1
                click.echo(f"line {n}: skipped: {why}", err=True)
                continue
            try:
                result = verify_record(record)
            except ValueError as e:
                bad += 1
                click.echo(f"line {n}: skipped: {e}", err=True)
                continue
            for k, v in result["counts"].items():
                totals[k] += v
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            done += 1
    finally:
        if inp is not sys.stdin.buffer:
            inp.close()
        if out is not sys.stdout:
            out.close()
    summary = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in totals.items())
    click.echo(f"verified {done} answer(s): {summary} sentence(s); {bad} line(s) skipped", err=True)
    if bad and not done:
        sys.exit(1)
