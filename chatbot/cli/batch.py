"""`medchat batch`: many questions from a file, answered and written as JSON Lines (resumable)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from chatbot.cli import PathArg, _settings, _setup_logging, _user_errors, main


@main.command()
@click.argument("questions", type=PathArg(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=PathArg(path_type=Path, dir_okay=False),
    required=True,
    help="JSONL file of answers; a rerun skips the questions already in it.",
)
@click.option(
    "--question-field", default=None, help="Field or column with the question (default `question`)."
)
@click.option("--id-field", default=None, help="Field with a stable row id (default `id`).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Questions answered at once with an HTTP engine (local engines answer one at a time).",
)
@click.option("-k", type=click.IntRange(1, 64), default=None, help="Passages to retrieve.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
@_user_errors
def batch(
    ctx: click.Context,
    questions: Path,
    output: Path,
    question_field: str | None,
    id_field: str | None,
    concurrency: int | None,
    k: int | None,
    as_json: bool,
) -> None:
    """Answer every question in QUESTIONS (JSONL or CSV), one JSON line each in --output.

    Other input fields are carried through under `input`. Interrupted runs resume.
    """
    settings = _settings(
        **{
            "batch.question_field": question_field,
            "batch.id_field": id_field,
            "batch.concurrency": concurrency,
        }
    )
    _setup_logging(settings, ctx.obj["verbose"])
    from chatbot.batch import read_questions, run_batch
    from chatbot.chain import Chain
    from chatbot.retrieval import RetrievalParams

    # the questions file first (its format, its fields), then an index that cannot be opened (missing,
    # a read-only home, damaged): one error now, not a traceback for each of thousands of questions
    read_questions(questions, settings.batch.question_field, settings.batch.id_field)
    chain = Chain(settings)
    chain.retriever  # noqa: B018
    summary = run_batch(
        chain,
        questions,
        output,
        question_field=settings.batch.question_field,
        id_field=settings.batch.id_field,
        concurrency=settings.batch.concurrency,
        on_bad_row=lambda b: click.echo(f"{questions}:{b.line}: {b.reason}; skipped", err=True),
        retrieval=RetrievalParams(k),  # per question, never written into the settings
    )
    for line, error in summary.failed:
        click.echo(f"{questions}:{line}: failed: {error}", err=True)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        for text in summary.lines():
            click.echo(text)
    if summary.interrupted:
        sys.exit(130)
    if summary.failed and not summary.answered and not summary.already_done:
        sys.exit(1)
