"""The `medchat` command line. Heavy libraries load inside the commands, so `--help` is instant.

This module holds the `main` group and what every command shares (settings, logging, errors);
each command lives in a module of its own, registered on import at the bottom.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from chatbot import __version__

if TYPE_CHECKING:
    from chatbot.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("medchat")


class PathArg(click.Path):
    """`click.Path` that refuses an empty value: click reads "" as ".", the current folder, which
    slips past `dir_okay=False` and reached commands as a folder (IsADirectoryError tracebacks)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("the path is empty: give a file or folder name", param, ctx)
        if isinstance(value, str) and "\x00" in value:
            self.fail("the path contains a NUL character: give a plain file or folder name", param, ctx)
        return super().convert(value, param, ctx)


def _settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from chatbot.errors import ConfigError
    from chatbot.settings import Settings

    try:
        settings = Settings()
        for dotted, value in overrides.items():
            if value is not None:
                section, key = dotted.split(".")
                setattr(getattr(settings, section), key, value)
    except ValidationError as e:
        first = e.errors()[0]
        where = "MEDCHAT_" + "__".join(str(p).upper() for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from e
    except (ValueError, OSError) as e:  # the TOML file: not TOML (TOMLDecodeError), not UTF-8, unreadable
        from chatbot.settings import config_file

        raise ConfigError(
            f"the settings file {config_file()} cannot be read ({str(e)[:200]}): fix it, or set "
            "MEDCHAT_CONFIG to another file"
        ) from e
    return settings


def _setup_logging(settings: Settings, verbose: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        # transformers imports bitsandbytes whenever it is installed, even just to load the embedder, and
        # its CPU backend warns on every start that an optional hub kernel package is missing
        console.addFilter(lambda r: not r.name.startswith("bitsandbytes.backends"))
    root.addHandler(console)
    try:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(settings.log_dir / "medchat.log", encoding="utf-8")
    except OSError as e:
        log.warning("cannot write logs under %s: %s", settings.log_dir, e)
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def _user_errors(fn: F) -> F:
    """Turn medchat's own errors into one line on stderr and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from chatbot.errors import MedchatError

        try:
            return fn(*args, **kwargs)
        except MedchatError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except Exception as e:  # a write that failed (no permission, read-only, disk full), a damaged file
            message = _storage_message(e) or _damaged_message(e)
            if message is None:
                raise
            log.debug("write failed", exc_info=True)
            click.echo(f"error: {message}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _configured(name: str) -> Any:
    """A place the settings name (`home`, `prefs_db_url`), for an error message; None when the
    settings cannot be read: they are not what failed there, so the message names no place."""
    try:
        from chatbot.settings import Settings

        return getattr(Settings(), name)
    except Exception:
        return None


def _storage_message(error: BaseException) -> str | None:
    """One sentence for a failed write, naming the place and the remedy; None if it is another error."""
    from chatbot.errors import storage_problem

    why = storage_problem(error)
    if why is None:
        return None
    home = _configured("home")
    where = next(
        (
            e.filename
            for e in (error, error.__cause__, error.__context__)
            if isinstance(e, OSError) and e.filename
        ),
        None,
    )
    place = f"{where}" if where else f"MEDCHAT_HOME ({home or 'its folder'})"
    return (
        f"cannot write to {place}: {why}. Make it writable (or free some space), "
        f"or set MEDCHAT_HOME to a folder you can write to, then run the command again"
    )


def _damaged_message(error: BaseException) -> str | None:
    """One sentence for a database file that is damaged or no database at all; None for other errors."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e).lower()
        if "file is not a database" in text or "malformed" in text or "database corruption" in text:
            url = _configured("prefs_db_url") or "the preference store"
            where = str(url).removeprefix("sqlite:///")
            return (
                f"the database {where} is damaged or not a medchat database: restore it from a backup, or "
                "move it away to start an empty one (MEDCHAT_PREFS__DB_URL names another)"
            )
        e = e.__cause__ or e.__context__
    return None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medchat")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """medchat: medical questions answered from your own documents, with cited sources.

    Settings come from MEDCHAT_* environment variables (MEDCHAT_HOME is where
    everything is written); `medchat config` shows them.
    """
    ctx.obj = {"verbose": verbose}


# the commands register themselves on `main` when imported; one module per command, named as the command
from chatbot.cli import (  # noqa: E402, F401
    ask,
    batch,
    config,
    eval,
    export,
    ingest,
    prefs,
    proxy,
    serve,
    train,
    triage,
    verify,
)
