"""`medchat ingest`: files and folders into the index, with a progress bar and a summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chatbot.cli import PathArg, _settings, _setup_logging, _user_errors, main

if TYPE_CHECKING:
    from chatbot.settings import Settings
    from ingestion.pipeline import IngestReport


def _print_report(report: IngestReport) -> None:
    click.echo(
        f"{report.files_seen} files seen: {report.count('ingested')} ingested, "
        f"{report.count('unchanged')} unchanged, {report.count('skipped')} skipped, "
        f"{report.count('failed')} failed; {report.chunks_added} chunks added, "
        f"{report.chunks_removed} removed, {report.total_chunks} in the index ({report.seconds:.1f} s)"
    )
    # every stage, always: which one took the time is the point (a warm embedder makes all of them short)
    stages = ", ".join(f"{k} {v:.1f} s" if v >= 0.05 else f"{k} <0.1 s" for k, v in report.stages.items())
    if stages:
        click.echo(f"time per stage: {stages}")
    if report.recovered:
        click.echo("an interrupted earlier run was cleaned up first", err=True)
    for f in report.files:
        if f.status in ("skipped", "failed"):
            reason = f.reason if f.path in f.reason else f"{f.path}: {f.reason}"  # always name the file
            click.echo(f"  {f.status}: {reason}", err=True)
        elif f.status == "removed":
            click.echo(f"  removed: {f.path} ({f.chunks} chunks; the file is gone)", err=True)
        for w in f.warnings:
            click.echo(f"  warning: {w}", err=True)
    if report.gone:
        click.echo(
            f"{report.gone} indexed files no longer exist: run with --prune to remove their chunks", err=True
        )


def run_ingest(
    settings: Settings,
    paths: list[Path],
    *,
    rebuild: bool = False,
    quiet: bool = False,
    prune: bool | None = None,
) -> IngestReport:
    from ingestion.pipeline import ingest

    if quiet or not sys.stderr.isatty():
        return ingest(paths, settings=settings, rebuild=rebuild, prune=prune)
    from tqdm import tqdm

    with tqdm(total=0, desc="ingesting", unit="file", file=sys.stderr, dynamic_ncols=True) as bar:

        def progress(path: str, done: int, total: int, embedded: int) -> None:
            bar.total = total
            bar.n = done
            name = Path(path).name[-40:] if path else ""
            note = f"{embedded:,} chunks embedded" + (f", {name}" if name else "")
            bar.set_postfix_str(note, refresh=False)
            bar.refresh()

        return ingest(paths, settings=settings, rebuild=rebuild, prune=prune, progress=progress)


@main.command()
@click.argument("paths", nargs=-1, type=PathArg(path_type=Path))
@click.option("--sample", is_flag=True, help="Also ingest the bundled sample corpus.")
@click.option("--rebuild", is_flag=True, help="Drop the index and build it anew.")
@click.option("--prune", is_flag=True, default=None, help="Remove the chunks of indexed files that are gone.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
@_user_errors
def ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    sample: bool,
    rebuild: bool,
    prune: bool | None,
    as_json: bool,
) -> None:
    """Read files or folders (PDF, HTML, Markdown, text, JSONL, JSON, PubMed/MedQuAD XML) into the index.

    Unchanged files are skipped, changed ones replaced; an interrupted run resumes.
    """
    settings = _settings()
    _setup_logging(settings, ctx.obj["verbose"])
    targets = list(paths) + ([settings.sample_corpus] if sample else [])
    if not targets and not prune:
        raise click.UsageError("give at least one file or folder to ingest, or --sample")
    try:
        report = run_ingest(settings, targets, rebuild=rebuild, quiet=as_json, prune=prune or None)
    except KeyboardInterrupt:
        click.echo(
            "\ninterrupted: files finished so far are kept; run the same command again to resume", err=True
        )
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report)
    if report.count("failed") and not report.count("ingested") and not report.count("unchanged"):
        sys.exit(1)
