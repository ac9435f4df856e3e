"""The judgments database on a real PostgreSQL server that the test starts (initdb into a temporary
folder, 127.0.0.1 on a free port, as `nobody` when the tests run as root): the migrations, the
store's behaviour (the SQLite suite's tests, run again here), and many annotators voting at once.

Skips, saying why, where PostgreSQL's binaries or the driver (`pip install -e '.[postgres]'`) are
missing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, inspect, text

from chatbot.labelling.store import migrations
from chatbot.labelling.store.prefs import PreferenceStore, ResponseIn, open_store
from tests.labelling.test_store import (  # the same behaviour, now on PostgreSQL
    served,
    test_a_harm_flag_with_a_rationale_is_stored_with_the_axes,
    test_a_judgment_records_sides_annotator_and_time,
    test_a_vote_on_a_comparison_never_served_is_refused,
    test_an_edit_supersedes_and_never_overwrites,
    test_gold_items_are_mixed_in_and_seen_by_everyone,
    test_simultaneous_double_submits_leave_one_submitted_judgment,
    test_the_database_itself_refuses_a_second_submitted_judgment,
    test_the_pending_round_survives_until_it_is_judged,
    test_the_queue_serves_each_item_once_per_annotator_up_to_its_overlap,
    test_two_annotators_racing_for_one_item_judge_one_pair,
    vote,
)
from tests.servers import Postgres, postgres

pytestmark = pytest.mark.slow

__all__ = [  # collected here too, with this module's `store` fixture
    "test_a_harm_flag_with_a_rationale_is_stored_with_the_axes",
    "test_a_judgment_records_sides_annotator_and_time",
    "test_a_vote_on_a_comparison_never_served_is_refused",
    "test_an_edit_supersedes_and_never_overwrites",
    "test_gold_items_are_mixed_in_and_seen_by_everyone",
    "test_simultaneous_double_submits_leave_one_submitted_judgment",
    "test_the_database_itself_refuses_a_second_submitted_judgment",
    "test_the_pending_round_survives_until_it_is_judged",
    "test_the_queue_serves_each_item_once_per_annotator_up_to_its_overlap",
    "test_two_annotators_racing_for_one_item_judge_one_pair",
]


@pytest.fixture(scope="module")
def pg() -> Postgres:
    with postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg: Postgres) -> str:
    """A new, empty database on the server."""
    return pg.create_database()


@pytest.fixture
def store(pg_url: str):
    s = PreferenceStore(pg_url)
    yield s
    s.close()


def test_the_settings_url_opens_postgresql_and_migrates_it(pg_url, monkeypatch):
    monkeypatch.setenv("MEDCHAT_PREFS__DB_URL", pg_url)
    from chatbot.settings import Settings

    store = open_store(Settings())
    try:
        assert store.engine.dialect.name == "postgresql"
        assert store.applied == [name for name, _ in migrations.MIGRATIONS]
        with store.engine.connect() as conn:
            recorded = [r[0] for r in conn.execute(text("SELECT name FROM _medchat_migrations ORDER BY id"))]
            where = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'one_submitted_judgment'")
            ).scalar_one()
        assert recorded == store.applied
        assert "UNIQUE" in where and "WHERE" in where and "'submitted'" in where  # partial, on PostgreSQL
        tables = set(inspect(store.engine).get_table_names())
        assert {"queue_items", "comparisons", "responses", "assignments", "judgments"} <= tables
        assert "training_runs" in tables
        columns = {c["name"]: c for c in inspect(store.engine).get_columns("judgments")}
        assert {"harm_flag", "after_reveal"} <= set(columns)  # m003's columns
        assert {c["name"] for c in inspect(store.engine).get_columns("responses")} >= {
            "prompt_messages",
            "raw_text",
        }
    finally:
        store.close()
    again = PreferenceStore(pg_url)
    assert again.applied == []
    again.close()


def test_a_judgment_round_trips_with_its_json_and_times(store):
    c = served(store, left="b")
    j = store.submit(
        vote(
            c,
            choice="B",
            strength="slightly",
            rationale="  cites the guideline  ",
            axes={"A": {"harm": "none"}, "B": {"harm": "mild"}},
        )
    )
    fresh = PreferenceStore(store.url)  # another connection pool: read back what was committed
    try:
        (stored,) = fresh.judgments()
        responses = fresh.responses(c.id)
    finally:
        fresh.close()
    assert stored.id == j.id and stored.choice == "B" and stored.rationale == "cites the guideline"
    assert stored.winner_response_id == responses["a"].id  # B is the right side, which showed slot a
    assert stored.axes == {responses["b"].id: {"harm": "none"}, responses["a"].id: {"harm": "mild"}}
    assert stored.submitted_at.tzinfo is not None and stored.submitted_at >= stored.served_at
    assert responses["a"].chunk_ids == [] and responses["a"].seed == 0


def test_replicas_starting_at_once_migrate_once(pg_url):
    """Four stores opened at the same moment on an empty database (replicas starting together)."""
    start = threading.Barrier(4)

    def open_one() -> list[str]:
        start.wait()
        s = PreferenceStore(pg_url)
        s.close()
        return s.applied

    with ThreadPoolExecutor(4) as pool:
        ran = list(pool.map(lambda _: open_one(), range(4)))
    names = [name for name, _ in migrations.MIGRATIONS]
    applied = [name for one in ran for name in one]
    assert sorted(applied) == names  # each applied once, by whichever store got to it first, no error
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM _medchat_migrations")).scalar_one() == len(names)
    engine.dispose()


def test_concurrent_votes_are_all_kept(store):
    """Twenty annotators vote on the same ten comparisons at once, from separate stores (as separate
    replicas would): every vote is a row, and double clicks leave one submitted vote each."""
    annotators = [f"ann{i:02d}" for i in range(20)]
    comparisons = []
    for n in range(10):
        c = store.create_comparison(
            f"question {n}", ResponseIn("v1", f"one {n}"), ResponseIn("v2", f"two {n}"), created_by="admin"
        )
        for a in annotators:
            store.assign(c.id, a, "a" if n % 2 else "b")
        comparisons.append(c)
    replicas = [PreferenceStore(store.url) for _ in range(4)]
    start = threading.Barrier(len(annotators))
    refused: list[Exception] = []

    def annotate(i: int) -> int:
        replica = replicas[i % len(replicas)]
        start.wait()
        kept = 0
        for n, c in enumerate(comparisons):
            replica.submit(vote(c, annotator=annotators[i], choice="AB"[(i + n) % 2]))
            kept += 1
            try:  # a double click: refused as a second vote, never a second row
                replica.submit(vote(c, annotator=annotators[i]))
            except Exception as e:
                refused.append(e)
        return kept

    try:
        with ThreadPoolExecutor(len(annotators)) as pool:
            acked = sum(pool.map(annotate, range(len(annotators))))
    finally:
        for r in replicas:
            r.close()
    assert acked == 200
    assert len(refused) == 200 and all("already voted" in str(e) for e in refused)
    rows = store.judgments(status=None)
    assert len(rows) == 200 and store.count_judgments() == 200
    assert len({(j.comparison_id, j.annotator) for j in rows}) == 200
    for i, a in enumerate(annotators):
        mine = {j.comparison_id: j.choice for j in rows if j.annotator == a}
        assert mine == {c.id: "AB"[(i + n) % 2] for n, c in enumerate(comparisons)}


def test_a_plain_postgresql_url_uses_the_installed_driver(pg_url):
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    s = PreferenceStore(plain)
    try:
        assert s.engine.dialect.driver in ("psycopg", "psycopg2") and s.count_judgments() == 0
    finally:
        s.close()


def test_a_missing_driver_is_one_line_naming_the_extra_and_hiding_the_password():
    import importlib.util

    from chatbot.errors import ConfigError

    if importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed here: its absence cannot be shown")
    with pytest.raises(ConfigError) as caught:
        PreferenceStore("postgresql+psycopg2://clinic:s3cret@db.example:5432/judgments")
    message = str(caught.value)
    assert "s3cret" not in message
    assert "'postgresql+psycopg2://clinic:***@db.example:5432/judgments'" in message
    assert "pip install 'medchat[postgres]'" in message and "\n" not in message
