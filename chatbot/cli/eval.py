"""`medchat eval`: benchmark scores for retrieval and answers on public medical datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from chatbot.cli import PathArg, _settings, _setup_logging, _user_errors, main


def _ks(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        ks = sorted({int(x) for x in value.replace(" ", "").split(",") if x})
    except ValueError as e:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of numbers, e.g. 1,5,10") from e
    if not ks or ks[0] < 1 or ks[-1] > 500:
        raise click.BadParameter("each k must be between 1 and 500")
    return ks


@main.command(name="eval")
@click.argument(
    "dataset",
    type=click.Choice(["medquad", "covidqa", "pubmedqa", "pubmedqa-retrieval", "mirage", "generic"]),
)
@click.argument("path", type=PathArg(path_type=Path, exists=True))
@click.option(
    "-o",
    "--outdir",
    type=PathArg(path_type=Path, file_okay=False),
    required=True,
    help="Folder for report.json, report.md, questions.jsonl and the plots.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Score a seeded sample of N questions.")
@click.option("--seed", type=int, default=None, help="Sampling seed (default from settings, 0).")
@click.option("-k", "ks", default=None, help="Cut-offs for recall@k/nDCG@k, e.g. 1,5,10,32.")
@click.option(
    "--corpus-limit",
    type=click.IntRange(1),
    default=None,
    help="Retrieval benchmarks: index a seeded sample of N documents (MedQuAD, PubMedQA).",
)
@click.option(
    "--questions",
    "questions_file",
    type=PathArg(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="generic: the questions JSONL ({question, relevant_ids}).",
)
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["given", "retrieval", "none"]),
    help="Answer benchmarks: settings to score (repeatable); default given+retrieval for PubMedQA, "
    "none+retrieval for MIRAGE.",
)
@click.option(
    "--answers",
    type=click.IntRange(0),
    default=0,
    help="Retrieval benchmarks: also answer N sampled questions through the whole chain "
    "(abstention, citation validity, latency per step).",
)
@click.option(
    "--corpus",
    type=PathArg(path_type=Path, exists=True),
    default=None,
    help="Answer benchmarks: a corpus to ingest and retrieve from in the retrieval setting.",
)
@click.pass_context
@_user_errors
def eval_(
    ctx: click.Context,
    dataset: str,
    path: Path,
    outdir: Path,
    limit: int | None,
    seed: int | None,
    ks: str | None,
    corpus_limit: int | None,
    questions_file: Path | None,
    modes: tuple[str, ...],
    answers: int,
    corpus: Path | None,
) -> None:
    """Score DATASET at PATH: retrieval (medquad, covidqa, pubmedqa-retrieval, generic) or answers
    (pubmedqa, mirage); writes a JSON and Markdown report with plots to --outdir."""
    settings = _settings()
    _setup_logging(settings, ctx.obj["verbose"])
    from chatbot.eval.runner import EvalOptions, run_eval

    opts = EvalOptions(
        dataset=dataset,
        path=path,
        outdir=outdir,
        limit=limit,
        seed=settings.eval.seed if seed is None else seed,
        ks=_ks(ks) or list(settings.eval.ks),
        corpus_limit=corpus_limit,
        questions=questions_file,
        modes=list(modes) or None,
        answers=answers,
        corpus=corpus,
    )
    report = run_eval(opts, settings, argv=["medchat", *sys.argv[1:]])
    from chatbot.eval.report import summary_lines

    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"report: {outdir / 'report.md'}")
