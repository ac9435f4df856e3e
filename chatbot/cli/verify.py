"""`medchat verify`: audit any system's answers against their passages, sentence by sentence."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

from chatbot.cli import _user_errors, main

# one answer and its passages: far above any real one, low enough that a runaway line is not parsed
MAX_LINE_BYTES = 2_000_000


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes | None, str]]:
    """Yields (line number, the line or None, why it was skipped) without holding a huge line."""
    n = 0
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:  # skip to the end of the oversized line
                rest = handle.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield n, None, f"longer than {MAX_LINE_BYTES // 1_000_000} MB; split the answer or its passages"
            continue
        yield n, line, ""


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
        for n, raw, why in _lines(inp):
            if raw is None:
                bad += 1
                click.echo(f"line {n}: skipped: {why}", err=True)
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as e:
                bad += 1
                click.echo(f"line {n}: skipped: not valid JSON ({e})", err=True)
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
