"""`medchat prefs`: administer preference labelling (questions queued, annotators, pairs prepared)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from chatbot.cli import PathArg, _settings, _user_errors, main
from chatbot.cli._progress import Progress


@main.group()
def prefs() -> None:
    """Administer preference labelling: the question queue and annotator accounts."""


@prefs.command(name="load-questions")
@click.argument("path", type=PathArg(path_type=Path, dir_okay=False))
@click.option(
    "--overlap", type=click.IntRange(1, 20), default=None, help="Annotators per item (default from settings)."
)
@click.option("--batch", default=None, help="Batch name (default: the file name).")
@_user_errors
def prefs_load_questions(path: Path, overlap: int | None, batch: str | None) -> None:
    """Queue the questions in PATH (text: one a line; JSONL or YAML with `question`, optional `gold`)."""
    from chatbot.labelling.questions import read_question_file
    from chatbot.labelling.store.prefs import open_store

    settings = _settings()
    items = read_question_file(path, settings.limits)  # all checked before any is queued
    n = open_store(settings).add_queue_items(
        items, batch=batch or path.name, overlap=overlap or settings.prefs.overlap
    )
    gold = sum(1 for i in items if i.get("gold"))
    click.echo(f"queued {n} questions ({gold} gold) from {path}")


@prefs.command(name="add-user")
@click.argument("name")
@click.option("--role", default="annotator", help="Recorded with each judgment, e.g. clinician, nurse, lay.")
@click.option("--admin", is_flag=True, help="Mark the user as an admin.")
@click.option(
    "--password",
    default=None,
    help="Password; left out, it is asked for twice at a terminal, or read as one line from stdin "
    "(`printf '%s\\n' \"$PW\" | medchat prefs add-user NAME`).",
)
@_user_errors
def prefs_add_user(name: str, role: str, admin: bool, password: str | None) -> None:
    """Add or replace annotator NAME in the users file (the password is stored hashed).

    A password piped on stdin is read as one line: click's prompt asks twice and would find the pipe
    empty the second time ("Aborted!")."""
    from chatbot.ui.auth import add_user

    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    settings = _settings()
    add_user(settings.users_path, name, password, role=role, admin=admin)
    click.echo(f"user {name} ({role}) saved in {settings.users_path}")


@prefs.command(name="prepare")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=None, help="At most this many items (default: all)."
)
@click.option("--seed", type=int, default=None, help="Seed for the choice of variants (default: random).")
@_user_errors
def prefs_prepare(limit: int | None, seed: int | None) -> None:
    """Generate and store both answers for queued questions ahead, so annotators never wait.

    Items that already have a pair are left alone; gold items get their sources. Interrupted,
    it resumes where it stopped. `medchat serve` also keeps a few pairs ahead (prefs.prepare_ahead).
    """
    import random
    import time

    from chatbot.chain import Chain
    from chatbot.labelling.service import CompareService
    from chatbot.labelling.store.prefs import open_store
    from chatbot.labelling.variants import VariantRunner, load_variants

    settings = _settings()
    store = open_store(settings)
    todo = store.unprepared_items(limit or 1_000_000)
    if not todo:
        click.echo("every queued question already has its pair: nothing to prepare")
        return
    chain = Chain(settings)
    runner = VariantRunner(chain, load_variants(settings.prefs.variants_file))
    service = CompareService(store, runner, settings)
    rng = random.Random(seed)
    started = time.perf_counter()
    # Each pair takes two generations (tens of seconds on a CPU): the ETA says whether to wait or leave.
    with Progress(len(todo), "preparing pairs") as bar:
        for item in todo:
            service.prepare_item(item, rng=rng)
            bar.advance()
    took = time.perf_counter() - started
    click.echo(f"prepared {len(todo)} pairs in {took:.0f} s; Next now shows them at once")
