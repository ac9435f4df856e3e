"""`medchat serve`: the app in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from chatbot.cli import PathArg, _settings, _setup_logging, _user_errors, main

if TYPE_CHECKING:
    from chatbot.settings import Settings

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
@click.option(
    "--model-server",
    "model_server",
    default=None,
    metavar="N|URL",
    help="N: start llama.cpp's llama-server (`make llama-server`) with N parallel slots on 127.0.0.1 and "
    "answer through it (stopped on exit); URL: answer through a server already running there.",
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
    model_server: str | None,
) -> None:
    """Start the app (Chat, Compare, Results) in the browser."""
    settings = _settings(**{"ui.host": host, "ui.port": port})
    _setup_logging(settings, ctx.obj["verbose"])
    slots = settings.generation.model_server
    if model_server is not None:
        if model_server.startswith(("http://", "https://")):
            settings = _settings(
                **{
                    "ui.host": host,
                    "ui.port": port,
                    "generation.engine": "openai",
                    "generation.base_url": model_server,
                }
            )
            slots = 0
        elif model_server.isdigit() and int(model_server) > 0:
            slots = int(model_server)
        else:
            raise click.BadParameter(
                f"{model_server!r}: give the number of parallel slots (e.g. 8) or the URL of a running "
                "server (http://127.0.0.1:8080/v1)",
                param_hint="--model-server",
            )
    server = None
    if slots:
        from chatbot.model_server import for_settings

        server = for_settings(settings.generation, slots)
        click.echo(f"starting llama-server with {slots} parallel slots on {server.model.name}…", err=True)
        server.start()
        # answers go through it; as many at once as it has slots (the rest wait in the app, told so)
        settings = _settings(
            **{
                "ui.host": host,
                "ui.port": port,
                "generation.engine": "openai",
                "generation.base_url": server.url,
                "generation.parallel": settings.generation.parallel or slots,
            }
        )
        _stop_on_sigterm()
    try:
        _serve(ctx, settings, sample_if_empty, users_file, no_login, insecure_open_network)
    finally:
        if server is not None:
            server.stop()


def _stop_on_sigterm() -> None:
    """SIGTERM ends `serve` as Ctrl-C does, so that the model server it started is stopped too."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _serve(
    ctx: click.Context,
    settings: Settings,
    sample_if_empty: bool,
    users_file: Path | None,
    no_login: bool,
    insecure_open_network: bool,
) -> None:
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
