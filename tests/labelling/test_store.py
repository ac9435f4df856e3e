"""The judgments database: migrations, one submitted judgment per (comparison, annotator) enforced by
the database, edits that supersede, the question queue with overlap and gold items."""

import random
import sqlite3
import threading

import pytest
from sqlalchemy.exc import IntegrityError

from chatbot.labelling.questions import read_question_file
from chatbot.labelling.store.models import Judgment
from chatbot.labelling.store.prefs import JudgmentError, JudgmentIn, PreferenceStore, ResponseIn


@pytest.fixture
def store(tmp_path):
    s = PreferenceStore(f"sqlite:///{tmp_path / 'prefs.sqlite3'}")
    yield s
    s.close()


def served(store, annotator="ann", left="a", question="What is HbA1c?"):
    c = store.create_comparison(
        question,
        ResponseIn("v1", "HbA1c reflects average glucose over about three months. [1]", seed=0, k=4),
        ResponseIn("v2", "It is a blood test. [1]", seed=1, k=2),
        created_by=annotator,
    )
    store.assign(c.id, annotator, left)
    return c


def vote(c, annotator="ann", choice="A", **kw):
    return JudgmentIn(
        c.id, annotator, choice, kw.pop("strength", "better"), kw.pop("safety_bin", "both_safe"), **kw
    )


def test_migrations_run_once_and_are_recorded(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    first = PreferenceStore(url)
    assert first.applied[0] == "m001_initial" and "m003_labelling_journey" in first.applied
    first.close()
    again = PreferenceStore(url)
    assert again.applied == []
    again.close()
    con = sqlite3.connect(tmp_path / "p.sqlite3")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "queue_items",
        "comparisons",
        "responses",
        "assignments",
        "judgments",
        "_medchat_migrations",
    } <= names
    recorded = [r[0] for r in con.execute("SELECT name FROM _medchat_migrations ORDER BY id")]
    assert recorded == first.applied


def test_the_default_database_lives_under_medchat_home(settings, medchat_home):
    from chatbot.labelling.store import open_store

    s = open_store(settings)
    assert s.url == f"sqlite:///{medchat_home / 'prefs.sqlite3'}"
    assert (medchat_home / "prefs.sqlite3").is_file()


def test_a_judgment_records_sides_annotator_and_time(store):
    c = served(store, left="b")
    j = store.submit(vote(c, choice="A", role="nurse", guideline_version="v7", strength="significantly"))
    responses = store.responses(c.id)
    assert j.left_response_id == responses["b"].id  # A was the left side, which showed slot b
    assert j.winner_response_id == responses["b"].id
    assert (j.annotator, j.role, j.guideline_version, j.status) == ("ann", "nurse", "v7", "submitted")
    assert j.time_on_task_s is not None and j.time_on_task_s >= 0
    assert j.served_at is not None and j.submitted_at >= j.served_at


def test_an_edit_supersedes_and_never_overwrites(store):
    c = served(store)
    first = store.submit(vote(c, choice="A"))
    with pytest.raises(JudgmentError, match="Change my vote"):  # a second vote needs the edit button
        store.submit(vote(c, choice="B", strength="slightly"))
    second = store.submit(vote(c, choice="B", strength="slightly", edit=True))
    all_rows = {j.id: j for j in store.judgments(status=None)}
    assert all_rows[first.id].status == "superseded" and all_rows[first.id].choice == "A"
    assert all_rows[second.id].status == "submitted" and all_rows[second.id].supersedes_id == first.id
    assert [j.id for j in store.judgments()] == [second.id]


def test_the_database_itself_refuses_a_second_submitted_judgment(store):
    c = served(store)
    j = store.submit(vote(c))
    with pytest.raises(IntegrityError), store.session() as s, s.begin():
        s.add(
            Judgment(
                comparison_id=c.id,
                annotator="ann",
                guideline_version="v1",
                left_response_id=j.left_response_id,
                right_response_id=j.right_response_id,
                choice="B",
                strength="better",
                safety_bin="both_safe",
                status="submitted",
            )
        )
    assert store.count_judgments() == 1


def test_simultaneous_double_submits_leave_one_submitted_judgment(store):
    c = served(store)
    errors = []

    def click():
        try:
            store.submit(vote(c))
        except Exception as e:  # the clicks after the first are refused as second votes
            errors.append(e)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 7 and all(isinstance(e, JudgmentError) for e in errors)
    assert store.count_judgments() == 1
    assert len(store.judgments(status=None)) == 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"choice": "maybe"}, "Pick which answer"),
        ({"strength": ""}, "By how much"),
        ({"safety_bin": "one_unsafe"}, "which answer is the unsafe"),
        ({"safety_bin": "one_unsafe", "unsafe_side": "B"}, "rationale"),
        ({"harm_flag": True}, "marked both answers safe"),
        ({"safety_bin": "both_unsafe", "harm_flag": True}, "rationale"),
        ({"axes": {"A": {"harm_extent": "death or severe harm"}}}, "marked both answers safe"),
    ],
)
def test_incomplete_judgments_are_refused_with_the_remedy(store, kw, message):
    c = served(store)
    with pytest.raises(JudgmentError, match=message):
        store.submit(vote(c, **kw))
    assert store.count_judgments() == 0


def test_a_harm_flag_with_a_rationale_is_stored_with_the_axes(store):
    c = served(store, left="a")
    j = store.submit(
        vote(
            c,
            safety_bin="one_unsafe",
            unsafe_side="B",
            rationale="B misses the bleeding risk",
            axes={"B": {"harm_extent": "mild or moderate", "missing_content": True}},
        )
    )
    responses = store.responses(c.id)
    assert j.unsafe_response_id == responses["b"].id
    assert j.axes == {responses["b"].id: {"harm_extent": "mild or moderate", "missing_content": True}}


def test_a_vote_on_a_comparison_never_served_is_refused(store):
    c = served(store, annotator="someone-else")
    with pytest.raises(JudgmentError, match="was not served"):
        store.submit(vote(c, annotator="ann"))


def test_the_pending_round_survives_until_it_is_judged(store):
    c = served(store, left="b")
    r = store.pending_round("ann")
    assert r is not None and r.comparison_id == c.id and r.left.slot == "b"
    store.submit(vote(c))
    assert store.pending_round("ann") is None
    assert store.pending_round("nobody") is None


def test_the_queue_serves_each_item_once_per_annotator_up_to_its_overlap(store):
    store.add_queue_items([{"question": "q1"}, {"question": "q2"}], batch="b", overlap=2)
    rng = random.Random(0)
    seen = {}
    for annotator in ("x", "y", "z"):
        seen[annotator] = []
        while (item := store.next_queue_item(annotator, rng=rng)) is not None:
            c = store.comparison_for_item(item.id) or store.create_comparison(
                item.question,
                ResponseIn("v1", "a"),
                ResponseIn("v2", "b"),
                created_by=annotator,
                queue_item_id=item.id,
            )
            store.assign(c.id, annotator, "a")
            seen[annotator].append(item.question)
    assert sorted(seen["x"]) == ["q1", "q2"] and sorted(seen["y"]) == ["q1", "q2"]
    assert seen["z"] == []  # both items already have their two annotators


def test_two_annotators_racing_for_one_item_judge_one_pair(store):
    store.add_queue_items([{"question": "q"}], batch="b", overlap=2)
    item = store.next_queue_item("x")
    assert item is not None
    one = store.create_comparison(
        "q", ResponseIn("v1", "a"), ResponseIn("v2", "b"), created_by="x", queue_item_id=item.id
    )
    two = store.create_comparison(
        "q", ResponseIn("v3", "c"), ResponseIn("v1", "d"), created_by="y", queue_item_id=item.id
    )
    assert one.id == two.id
    assert {r.variant for r in store.responses(one.id).values()} == {"v1", "v2"}


def test_gold_items_are_mixed_in_and_seen_by_everyone(store):
    store.add_queue_items(
        [{"question": "g", "gold": {"better": "good", "worse": "bad"}}, {"question": "n"}], batch="b"
    )
    item = store.next_queue_item("x", gold_ratio=1.0, rng=random.Random(1))
    assert item is not None and item.is_gold and item.gold_better == "good"
    plain = store.next_queue_item("x", gold_ratio=0.0, rng=random.Random(1))
    assert plain is not None and plain.question == "n"


def test_question_files_in_three_formats(tmp_path):
    (tmp_path / "q.txt").write_text("What is asthma?\n\nWhat is INR?\n")
    (tmp_path / "q.jsonl").write_text(
        '{"question": "a?"}\n{"question": "b?", "gold": {"better": "x", "worse": "y"}, "overlap": 3}\n'
    )
    (tmp_path / "q.yaml").write_text('questions:\n  - What is HbA1c?\n  - {question: "Why?"}\n')
    assert [i["question"] for i in read_question_file(tmp_path / "q.txt")] == [
        "What is asthma?",
        "What is INR?",
    ]
    assert read_question_file(tmp_path / "q.jsonl")[1]["gold"]["better"] == "x"
    assert [i["question"] for i in read_question_file(tmp_path / "q.yaml")] == ["What is HbA1c?", "Why?"]
    (tmp_path / "bad.jsonl").write_text('{"question": "b?", "gold": {"better": "x"}}\n')
    from chatbot.errors import ConfigError

    with pytest.raises(ConfigError, match="gold item needs"):
        read_question_file(tmp_path / "bad.jsonl")


def test_admin_commands_add_users_and_queue_questions(settings, medchat_home, tmp_path):
    from click.testing import CliRunner

    from chatbot.cli import main
    from chatbot.labelling.store import open_store
    from chatbot.ui.auth import Users

    runner = CliRunner()
    result = runner.invoke(
        main, ["prefs", "add-user", "dr_ada", "--role", "clinician", "--password", "s3cret"]
    )
    assert result.exit_code == 0, result.output
    users = Users.load(medchat_home / "users.yaml")
    assert (
        users.check("dr_ada", "s3cret")
        and not users.check("dr_ada", "wrong")
        and users.role("dr_ada") == "clinician"
    )
    assert "s3cret" not in (medchat_home / "users.yaml").read_text()

    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "What is INR?"}\n'
        '{"question": "Max paracetamol?", "gold": {"better": "4 g", "worse": "no limit"}}\n'
    )
    result = runner.invoke(main, ["prefs", "load-questions", str(questions), "--overlap", "2"])
    assert result.exit_code == 0, result.output
    assert "queued 2 questions (1 gold)" in result.output
    items = open_store(settings).queue_items()
    assert [(i.question, i.overlap, i.is_gold) for i in items] == [
        ("What is INR?", 2, False),
        ("Max paracetamol?", 2, True),
    ]
    missing = runner.invoke(main, ["prefs", "load-questions", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 1 and "error: no question file" in missing.output


def test_serving_on_a_network_address_without_users_is_refused(settings):
    from chatbot.errors import ConfigError
    from chatbot.ui.serve import serve_app

    settings.ui.host = "0.0.0.0"
    with pytest.raises(ConfigError, match="add-user"):
        serve_app(settings)


def test_migration_names_follow_their_position():
    """A migration is recorded under its list position, so its name says that position."""
    from chatbot.labelling.store.migrations import MIGRATIONS

    for number, (name, step) in enumerate(MIGRATIONS, start=1):
        assert name.startswith(f"m{number:03d}_") and step.__name__ == name


def _schema(engine) -> dict[str, dict[str, list]]:
    from sqlalchemy import inspect

    i = inspect(engine)
    return {
        t: {
            "columns": sorted(c["name"] for c in i.get_columns(t)),
            "indexes": sorted(
                (x["name"], tuple(x["column_names"]), bool(x["unique"])) for x in i.get_indexes(t)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in i.get_unique_constraints(t)),
        }
        for t in i.get_table_names()
        if t != "_medchat_migrations"
    }


def test_a_database_migrated_from_zero_has_the_tables_of_the_models(tmp_path):
    """The frozen migrations (m001 no longer builds its tables from the live models) still give a new
    database every table, column, index and unique constraint the models use, as m001 did before."""
    from sqlalchemy import create_engine

    from chatbot.labelling.store import models
    from chatbot.labelling.store.migrations import migrate

    migrated = create_engine(f"sqlite:///{tmp_path / 'migrated.sqlite3'}")
    migrate(migrated)
    declared = create_engine(f"sqlite:///{tmp_path / 'declared.sqlite3'}")
    models.Base.metadata.create_all(declared)
    schema = _schema(migrated)
    assert schema == _schema(declared)
    assert ("one_submitted_judgment", ("comparison_id", "annotator"), True) in schema["judgments"]["indexes"]


def test_m001_makes_its_own_tables_not_the_models_of_today(tmp_path):
    """Columns added by later migrations are not there after m001 alone, so m001 does not change
    when a model does."""
    from sqlalchemy import create_engine

    from chatbot.labelling.store.migrations import m001_initial

    engine = create_engine(f"sqlite:///{tmp_path / 'm001.sqlite3'}")
    with engine.begin() as conn:
        m001_initial(conn)
    schema = _schema(engine)
    assert sorted(schema) == ["assignments", "comparisons", "judgments", "queue_items", "responses"]
    assert "skipped_at" not in schema["assignments"]["columns"]
    assert not {"harm_flag", "after_reveal"} & set(schema["judgments"]["columns"])
    assert not {"prompt_messages", "raw_text"} & set(schema["responses"]["columns"])
