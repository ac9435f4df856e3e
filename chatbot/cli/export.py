"""`medchat export`: the stored preference judgments out, as training or analysis files."""

from __future__ import annotations

from pathlib import Path

import click

from chatbot.cli import PathArg, _settings, _user_errors, main
from chatbot.labelling.export import AGGREGATIONS, FORMATS


@main.command(name="export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    required=True,
    help="; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values()) + ".",
)
@click.option(
    "-o",
    "--output",
    type=PathArg(path_type=Path, dir_okay=False),
    default=None,
    help="Default ./medchat-FORMAT.jsonl",
)
@click.option(
    "--aggregate",
    type=click.Choice(list(AGGREGATIONS)),
    default="majority",
    show_default=True,
    help="How the votes of several annotators on one pair decide it (dpo, reward, kto); "
    "a pair without a leading outcome is dropped.",
)
@click.option(
    "--same-prompt-only",
    is_flag=True,
    help="No effect, kept for old scripts: dpo/reward rows always pair answers written from one prompt.",
)
@click.option(
    "--include-after-reveal",
    is_flag=True,
    help="No effect, kept for old scripts: a changed vote always counts once, as the new vote.",
)
@_user_errors
def export_(
    fmt: str, output: Path | None, aggregate: str, same_prompt_only: bool, include_after_reveal: bool
) -> None:
    """Write the stored preference judgments in a training or analysis format.

    dpo/reward/kto rows hold the prompt the model saw (system, worked example, numbered passages,
    question) as chat messages, one row per pair with the annotators' votes aggregated. Judgments a
    format cannot use are listed with their reasons in OUTPUT's `.excluded.jsonl` twin. The files are
    written readable by you only (0600).
    """
    from chatbot.labelling.export import SelectOptions, export, write_export
    from chatbot.labelling.store.prefs import open_store

    settings = _settings()
    options = SelectOptions(aggregate, same_prompt_only, include_after_reveal)
    result = export(open_store(settings), fmt, options)
    path, excluded = write_export(result, output or Path(f"medchat-{fmt}.jsonl"))
    click.echo(f"{len(result.rows)} rows written to {path}")
    if result.excluded:
        counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(result.counts.items()))
        click.echo(f"{len(result.excluded)} judgments excluded ({counts}); reasons in {excluded}", err=True)
