"""`medchat triage "message"`: the triage decision for one message and why (for reviewing the gate)."""

from __future__ import annotations

import json

import click

from chatbot.cli import _settings, _setup_logging, _user_errors, main


@main.command()
@click.argument("message", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print the decision and its reasons as JSON.")
@click.pass_context
@_user_errors
def triage(ctx: click.Context, message: str, as_json: bool) -> None:
    """Say whether MESSAGE is an emergency, urgent or routine, and why: the rule that fired, or the
    classifier's probability and the nearest labelled examples. Nothing is retrieved or generated."""
    from chatbot.errors import EmptyQuestionError

    if not message.strip():
        raise EmptyQuestionError(
            'the message is empty: try `medchat triage "my dad\'s face has dropped on one side"`'
        )
    settings = _settings()
    _setup_logging(settings, ctx.obj["verbose"])
    from chatbot.triage import Triage

    result = Triage(settings.safety).load().assess(message)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    name = {"emergency": "EMERGENCY", "urgent": "URGENT (see a doctor today)", "routine": "routine"}[
        result.level
    ]
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
