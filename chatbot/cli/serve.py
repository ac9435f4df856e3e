"""`medchat serve`: the app in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from chatbot.cli import PathArg, _settings, _setup_logging, _user_errors, main

if TYPE_CHECKING:
    pass

from chatbot.cli.ingest import _print_report, run_ingest


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 7860).")
@click.option(
    "--sample-if-empty", is_flag=True, help="Ingest the bundled sample corpus when no index exists."
)
@click.option(
    "--users",
    "users_file",
    type=PathArg(path_type=Path, dir_okay=False),
    default=None,
    help="Annotator accounts (YAML; default $MEDCHAT_HOME/users.yaml); logins required when it has users.",
)
@click.option(
    "--no-login",
    is_flag=True,
    help="Serve without logins (judgments recorded as 'local', the one user is admin); 127.0.0.1 only.",
)
@click.option(
    "--insecure-open-network",
    is_flag=True,
    help="Allow --no-login on a non-local address: EVERYONE who can reach it is admin.",
)
@click.pass_context
@_user_errors
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    sample_if_empty: bool,
    users_file: Path | None,
    no_login: bool,
    insecure_open_network: bool,
) -> None:
    """Start the app (Chat, Compare, Results) in the browser."""
    settings = _settings(**{"ui.host": host, "ui.port": port})
    _setup_logging(settings, ctx.obj["verbose"])
    if sample_if_empty and not settings.chroma_file.is_file():
        click.echo(f"no index at {settings.chroma_dir}: ingesting the sample corpus first", err=True)
        _print_report(run_ingest(settings, [settings.sample_corpus]))
    from chatbot.ui.serve import serve_app

    def announce() -> None:  # only once it listens: a refused or failed start prints no address
        click.echo(f"medchat is running at http://{settings.ui.host}:{settings.ui.port}  (Ctrl-C stops it)")

    serve_app(
        settings,
        users_file=users_file,
        login=False if no_login else None,
        open_network=insecure_open_network,
        announce=announce,
    )
