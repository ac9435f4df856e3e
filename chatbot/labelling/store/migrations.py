"""Versioned schema migrations, applied in order and recorded in `_medchat_migrations`.

Add a function to `MIGRATIONS` for each change, at the end, named `m<NNN>_<what>` with NNN its
position in the list (the id it is recorded under); never edit or rename one that has shipped.
Each migration runs in its own transaction with its record.

A migration says what its tables were at its time, never through the live models (`models.py`):
a column added to a model later is added by a later migration, on old and new databases alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "_medchat_migrations"


def _id() -> Column[str]:
    return Column("id", String(32), primary_key=True)


def _when(name: str, nullable: bool = False) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


def m001_initial(conn: Connection) -> None:
    """The queue, comparisons, responses, assignments and judgments, as they were at m001."""
    meta = MetaData()
    Table(
        "queue_items",
        meta,
        _id(),
        Column("batch", String(200), nullable=False),
        Column("question", Text, nullable=False),
        Column("overlap", Integer, nullable=False),
        Column("gold_better", Text),
        Column("gold_worse", Text),
        _when("created_at"),
    )
    Table(
        "comparisons",
        meta,
        _id(),
        Column("question", Text, nullable=False),
        Column("queue_item_id", String(32), ForeignKey("queue_items.id"), unique=True),
        Column("is_gold", Boolean, nullable=False),
        Column("created_by", String(200), nullable=False),
        _when("created_at"),
    )
    Table(
        "responses",
        meta,
        _id(),
        Column("comparison_id", String(32), ForeignKey("comparisons.id"), nullable=False, index=True),
        Column("slot", String(1), nullable=False),
        Column("variant", String(200), nullable=False),
        *(Column(name, JSON, nullable=False) for name in ("variant_config", "prompt_parts")),
        Column("model", String(300), nullable=False),
        Column("quantization", String(50), nullable=False),
        Column("generation", JSON, nullable=False),
        Column("seed", Integer),
        Column("k", Integer),
        Column("chunk_ids", JSON, nullable=False),
        Column("prompt_hash", String(100), nullable=False),
        Column("text", Text, nullable=False),
        Column("answer", JSON, nullable=False),
        Column("finished", Boolean, nullable=False),
        Column("error", Text),
        Column("seconds", Float),
        _when("created_at"),
        UniqueConstraint("comparison_id", "slot"),
    )
    Table(
        "assignments",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("comparison_id", String(32), ForeignKey("comparisons.id"), nullable=False, index=True),
        Column("annotator", String(200), nullable=False, index=True),
        Column("left_slot", String(1), nullable=False),
        _when("served_at"),
        UniqueConstraint("comparison_id", "annotator"),
    )
    Table(
        "judgments",
        meta,
        _id(),
        Column("comparison_id", String(32), ForeignKey("comparisons.id"), nullable=False, index=True),
        Column("annotator", String(200), nullable=False, index=True),
        Column("role", String(100), nullable=False),
        Column("guideline_version", String(100), nullable=False),
        Column("left_response_id", String(32), ForeignKey("responses.id"), nullable=False),
        Column("right_response_id", String(32), ForeignKey("responses.id"), nullable=False),
        Column("choice", String(10), nullable=False),
        Column("winner_response_id", String(32)),
        Column("strength", String(20), nullable=False),
        Column("safety_bin", String(20), nullable=False),
        Column("unsafe_response_id", String(32)),
        Column("axes", JSON, nullable=False),
        Column("rationale", Text, nullable=False),
        _when("served_at", nullable=True),
        _when("submitted_at"),
        Column("time_on_task_s", Float),
        Column("status", String(12), nullable=False),
        Column("supersedes_id", String(32)),
        # at most one submitted judgment per annotator and comparison, kept by the database itself
        Index(
            "one_submitted_judgment",
            "comparison_id",
            "annotator",
            unique=True,
            sqlite_where=text("status = 'submitted'"),
            postgresql_where=text("status = 'submitted'"),
        ),
    )
    meta.create_all(conn)


def m002_training_runs(conn: Connection) -> None:
    """The `training_runs` table: each `medchat train` run and the judgments it learned from."""
    meta = MetaData()
    Table(
        "training_runs",
        meta,
        _id(),
        Column("name", String(200), nullable=False, unique=True),
        Column("kind", String(20), nullable=False),
        Column("status", String(20), nullable=False),
        Column("base_model", Text, nullable=False),
        Column("base_hash", String(100), nullable=False),
        Column("output_dir", Text, nullable=False),
        *(
            Column(name, JSON, nullable=False)
            for name in (
                "train_judgment_ids",
                "eval_judgment_ids",
                "guideline_versions",
                "excluded",
                "hyperparameters",
                "metrics",
            )
        ),
        Column("variant", String(200)),
        Column("error", Text),
        _when("started_at"),
        _when("finished_at", nullable=True),
    )
    meta.create_all(conn)


def m003_labelling_journey(conn: Connection) -> None:
    """Skipped assignments, the harm flag, and votes changed after the names were revealed.

    Databases that an earlier m001 made from the live models have these columns already."""
    when = DateTime(timezone=True).compile(dialect=conn.dialect)  # as m001's times: with their zone
    wanted = {
        "assignments": [("skipped_at", f"{when} NULL")],
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
                {"id": number, "name": name, "at": datetime.now(UTC).isoformat()},
            )
        log.info("applied migration %s", name)
        ran.append(name)
    return ran
