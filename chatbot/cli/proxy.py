"""`medchat proxy-config`: an nginx configuration for several `medchat serve` replicas."""

from __future__ import annotations

from pathlib import Path

import click

from chatbot.cli import PathArg, _user_errors, main


@main.command("proxy-config")
@click.option(
    "--replica",
    "replicas",
    multiple=True,
    required=True,
    help="A `medchat serve` address, HOST:PORT; repeat for each replica.",
)
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="Where nginx listens, HOST:PORT.")
@click.option(
    "--state-dir",
    type=PathArg(path_type=Path, file_okay=False),
    default=None,
    help="Render a whole nginx.conf whose pid, logs and temporary files live in this folder.",
)
@click.option(
    "--conf-d",
    is_flag=True,
    help="Render only the part for the system nginx's /etc/nginx/conf.d/ (no --state-dir).",
)
@click.option("--max-body", default="64m", show_default=True, help="Largest request body nginx passes on.")
@click.option(
    "-o",
    "--output",
    type=PathArg(path_type=Path, dir_okay=False),
    default=None,
    help="Write the configuration here instead of printing it.",
)
@_user_errors
def proxy_config(
    replicas: tuple[str, ...],
    listen: str,
    state_dir: Path | None,
    conf_d: bool,
    max_body: str,
    output: Path | None,
) -> None:
    """Print an nginx configuration that spreads users over replicas, each session kept on one."""
    from chatbot.errors import ConfigError
    from chatbot.proxy import render_nginx

    if conf_d == (state_dir is not None):
        raise ConfigError(
            "say which configuration to render: --state-dir DIR (a whole nginx.conf) or --conf-d "
            "(the part for /etc/nginx/conf.d/)"
        )
    text = render_nginx(replicas, listen=listen, state_dir=state_dir, max_body=max_body)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    if state_dir is not None:
        start = f"nginx -p {state_dir} -e {state_dir}/error.log -c {output.resolve()}"
        click.echo(f"wrote {output}: start it with  {start}", err=True)
    else:
        click.echo(f"wrote {output}: copy it to /etc/nginx/conf.d/ and run  nginx -s reload", err=True)
