"""Versioned schema migrations, applied in order and recorded in `_medchat_migrations`.

Add a function to `MIGRATIONS` for each change, at the end, named `m<NNN>_<what>` with NNN its
position in the list (the id it is recorded under); never edit or rename one that has shipped.
Each migration runs in its own transaction with its record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, text

from chatbot.labelling.store import models

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "_medchat_migrations"


def m001_initial(conn: Connection) -> None:
    tables = [
        models.QueueItem.__table__,
        models.Comparison.__table__,
        models.Response.__table__,
        models.Assignment.__table__,
        models.Judgment.__table__,
    ]
    models.Base.metadata.create_all(conn, tables=tables)  # type: ignore[arg-type]


def m002_training_runs(conn: Connection) -> None:
    """The `training_runs` table: each `medchat train` run and the judgments it learned from."""
    models.Base.metadata.create_all(conn, tables=[models.TrainingRun.__table__])  # type: ignore[list-item]


def m003_labelling_journey(conn: Connection) -> None:
    """Skipped assignments, the harm flag, and votes changed after the names were revealed.

    m001 creates tables from the current models, so on a fresh database the columns exist already."""
    wanted = {
        "assignments": [("skipped_at", "TIMESTAMP NULL")],
        "judgments": [
            ("harm_flag", "BOOLEAN NOT NULL DEFAULT FALSE"),
            ("after_reveal", "BOOLEAN NOT NULL DEFAULT FALSE"),
        ],
    }
    for table, columns in wanted.items():
        have = {c["name"] for c in inspect(conn).get_columns(table)}
        for name, ddl in columns:
            if name not in have:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


def m004_export_prompt_messages(conn: Connection) -> None:
    """`responses.prompt_messages`: the messages the model saw, so exports train on the full prompt.

    Rows stored before it have NULL there; the export rebuilds their prompt from the stored answer."""
    if "prompt_messages" not in {c["name"] for c in inspect(conn).get_columns("responses")}:
        conn.execute(text("ALTER TABLE responses ADD COLUMN prompt_messages JSON NULL"))


def m005_response_raw_text(conn: Connection) -> None:
    """`responses.raw_text`: what the model wrote before the grounding check (`text` is what was shown).

    Rows stored before it keep NULL there: their model text was not kept apart, and a guess would pass
    the shown text off as the model's."""
    if "raw_text" not in {c["name"] for c in inspect(conn).get_columns("responses")}:
        conn.execute(text("ALTER TABLE responses ADD COLUMN raw_text TEXT NULL"))


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("m001_initial", m001_initial),
    ("m002_training_runs", m002_training_runs),
    ("m003_labelling_journey", m003_labelling_journey),
    ("m004_export_prompt_messages", m004_export_prompt_messages),
    ("m005_response_raw_text", m005_response_raw_text),
]


def applied(engine: Engine) -> list[str]:
    if not inspect(engine).has_table(MIGRATIONS_TABLE):
        return []
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY id"))]


LOCK_KEY = 0x6D656463_68617431
"""The PostgreSQL advisory lock that lets one process at a time migrate (any 64-bit number)."""


def _one_at_a_time(conn: Connection) -> None:
    """Serialise migrating processes (several replicas starting at once on one database) for the rest
    of this transaction. SQLite needs nothing: its transactions here begin IMMEDIATE (write-locked)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations not yet applied; returns their names.

    Each runs in its own transaction with its record, after checking, inside that transaction and
    under the lock, that no other process applied it meanwhile."""
    with engine.begin() as conn:
        _one_at_a_time(conn)
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
                "id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL UNIQUE, applied_at VARCHAR(40) NOT NULL)"
            )
        )
    done = set(applied(engine))
    ran = []
    for number, (name, step) in enumerate(MIGRATIONS, start=1):
        if name in done:
            continue
        with engine.begin() as conn:
            _one_at_a_time(conn)
            recorded = text(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = :name")
            if conn.execute(recorded, {"name": name}).first() is not None:
                continue  # another process applied it while this one waited
            step(conn)
            conn.execute(
                text(f"INSERT INTO {MIGRATIONS_TABLE} (id, name, applied_at) VALUES (:id, :name, :at)"),
                {"id": number, "name": name, "at": models.utcnow().isoformat()},
            )
        log.info("applied migration %s", name)
        ran.append(name)
    return ran
