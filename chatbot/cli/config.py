"""`medchat config`: the effective settings as JSON."""

from __future__ import annotations

import click

from chatbot.cli import _settings, _user_errors, main


@main.command()
@_user_errors
def config() -> None:
    """Show the effective settings as JSON."""
    click.echo(_settings().model_dump_json(indent=2))
