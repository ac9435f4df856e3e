"""`medchat ask`: one question answered from the index, and how an answer is printed."""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import click

from chatbot.cli import _settings, _setup_logging, _user_errors, main
from chatbot.safety.wording import STOPPED_NOTE

if TYPE_CHECKING:
    from chatbot.chain import Answer


def render_answer(answer: Answer, *, with_text: bool = True) -> str:
    lines = [answer.text, ""] if with_text else [""]
    if answer.withheld and answer.grounding != "free":
        lines.append(f"Not in your sources ({len(answer.withheld)}), not shown as part of the answer:")
        lines.extend(f"  - {s}" for s in answer.withheld)
        lines.append("")
    if answer.stopped:
        lines.append(STOPPED_NOTE)
        lines.append("")
    if answer.invalid_citations:
        numbers = ", ".join(str(n) for n in answer.invalid_citations)
        lines.insert(1, f"(removed citations to sources that were not given: {numbers})")
    if answer.passages and not answer.abstained:
        lines.append("Sources:")
        for n, p in enumerate(answer.passages, start=1):
            mark = "*" if n in answer.cited else " "
            where = f" - {p.section}" if p.section else ""
            lines.append(f" {mark}[{n}] {p.title}{where} ({p.source_name}, score {p.score:.2f})")
        if answer.uncited:
            lines.append("Note: the answer cites none of these sources; check it against them.")
        lines.append("")
    lines.append(answer.disclaimer)
    return "\n".join(lines)


def _filters(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    """`--filter year>=2020 --filter source=notes.md` as retrieval metadata filters."""
    filters: dict[str, Any] = {}
    for pair in pairs:
        match = re.fullmatch(r"\s*(\w+)\s*(>=|<=|!=|=)\s*(.+?)\s*", pair)
        if not match:
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE, KEY>=VALUE, KEY<=VALUE or KEY!=VALUE")
        key, op, raw = match.groups()
        value: Any = int(raw) if raw.lstrip("-").isdigit() else raw
        ops = {">=": "$gte", "<=": "$lte", "!=": "$ne"}
        filters[key] = value if op == "=" else {**filters.get(key, {}), ops[op]: value}
    return filters or None


@main.command()
@click.argument("question", required=False, default="")
@click.option("-k", type=click.IntRange(1, 64), default=None, help="Passages to retrieve.")
@click.option("--preset", default=None, help="Prompt preset from prompts/presets.toml (e.g. colleague).")
@click.option(
    "--filter",
    "filter_pairs",
    multiple=True,
    help="Only passages whose metadata match, e.g. --filter year>=2020 --filter source=/data/notes.md.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer, sources and timings as JSON.")
@click.pass_context
@_user_errors
def ask(
    ctx: click.Context,
    question: str,
    k: int | None,
    preset: str | None,
    filter_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Answer QUESTION from the index, citing the passages used."""
    from chatbot.errors import EmptyQuestionError

    if not question.strip():
        raise EmptyQuestionError('the question is empty: try `medchat ask "What is a normal HbA1c?"`')
    settings = _settings()
    _setup_logging(settings, ctx.obj["verbose"])
    from chatbot.chain import Chain
    from chatbot.retrieval import RetrievalParams
    from prompts import PromptVariant

    # this question's k, filters and preset travel with it; the settings are not touched
    retrieval = RetrievalParams(k, _filters(filter_pairs))
    chain = Chain(settings, variant=PromptVariant.from_settings(settings.prompts, preset=preset))
    if as_json:
        answer = chain.answer(question, retrieval=retrieval)
        click.echo(json.dumps(answer.as_dict(), indent=2, ensure_ascii=False))
        return
    live = sys.stdout.isatty()
    stream = chain.stream(question, retrieval=retrieval)
    for piece in stream:
        if live:
            click.echo(piece, nl=False)
    assert stream.answer is not None
    click.echo(render_answer(stream.answer, with_text=not live))
