"""Exports: TRL preference / reward / KTO rows, arena battles, raw judgments; every exclusion has a reason.
Also the Bradley-Terry leaderboard and the agreement statistics."""

import json
import math
from pathlib import Path

import pytest

from chatbot.export import SMALL_MARGIN, export, write_export
from chatbot.leaderboard import cohen_kappa, fit_bradley_terry, fleiss_kappa, leaderboard, results
from chatbot.store.prefs import JudgmentIn, PreferenceStore, ResponseIn


@pytest.fixture
def store(tmp_path):
    s = PreferenceStore(f"sqlite:///{tmp_path / 'prefs.sqlite3'}")
    yield s
    s.close()


def judged(
    store,
    choice,
    *,
    annotator="ann",
    left="a",
    gold=False,
    texts=("good answer [1]", "poor answer"),
    variants=("v-good", "v-poor"),
    **kw,
):
    c = store.create_comparison(
        "What is a normal INR?",
        ResponseIn(variants[0], texts[0], model="m", prompt_hash="h1", chunk_ids=["c1"], seed=0, k=4),
        ResponseIn(variants[1], texts[1], model="m", prompt_hash="h2", chunk_ids=["c2"], seed=1, k=2),
        created_by=annotator,
        is_gold=gold,
    )
    store.assign(c.id, annotator, left)
    j = store.submit(
        JudgmentIn(
            c.id, annotator, choice, kw.pop("strength", "better"), kw.pop("safety_bin", "both_safe"), **kw
        )
    )
    return c, j


def reasons(result):
    return {e["judgment_id"]: e["reason"] for e in result.excluded}


def test_dpo_rows_are_conversational_and_follow_the_sides(store):
    _, j = judged(store, "B", left="b")  # B (right) showed slot a, the good answer
    out = export(store, "dpo")
    assert out.excluded == []
    (row,) = out.rows
    assert row["prompt"] == [{"role": "user", "content": "What is a normal INR?"}]
    # left showed slot b ("poor answer"), B is the right = slot a = "good answer [1]"
    assert row["chosen"] == [{"role": "assistant", "content": "good answer [1]"}]
    assert row["rejected"] == [{"role": "assistant", "content": "poor answer"}]
    assert row["judgment_id"] == j.id


@pytest.mark.parametrize(
    ("strength", "margin"),
    [("significantly", 1.0), ("better", 2 / 3), ("slightly", 1 / 3), ("negligibly", 0.0)],
)
def test_reward_rows_carry_the_llama2_small_margin(store, strength, margin):
    judged(store, "A", strength=strength)
    (row,) = export(store, "reward").rows
    assert math.isclose(row["margin"], margin)
    assert SMALL_MARGIN[strength] == row["margin"]


def test_ties_both_bad_unsafe_chosen_gold_and_superseded_are_excluded_with_reasons(store):
    _, tie = judged(store, "tie")
    _, bad = judged(store, "both_bad")
    _, unsafe = judged(store, "A", safety_bin="one_unsafe", unsafe_side="A", rationale="wrong dose")
    _, gold = judged(store, "A", gold=True)
    c, first = judged(store, "A", annotator="eve")
    store.submit(JudgmentIn(c.id, "eve", "B", "slightly", "both_safe"))
    _, kept = judged(store, "A", safety_bin="one_unsafe", unsafe_side="B", rationale="B unsafe")
    out = export(store, "dpo")
    why = reasons(out)
    assert "tie" in why[tie.id]
    assert "both bad" in why[bad.id]
    assert "unsafe" in why[unsafe.id] and "never used" in why[unsafe.id]
    assert "gold" in why[gold.id]
    assert "superseded" in why[first.id]
    assert {r["judgment_id"] for r in out.rows} == {
        kept.id,
        *(j.id for j in store.judgments() if j.annotator == "eve"),
    }
    # every stored judgment is either a row or an exclusion
    assert len(out.rows) + len(out.excluded) == len(store.judgments(status=None))


def test_kto_both_bad_gives_two_negatives_and_unsafe_is_never_desirable(store):
    _, bad = judged(store, "both_bad")
    _, win = judged(store, "A", left="a")
    _, tie = judged(store, "tie")
    _, both_unsafe = judged(store, "A", safety_bin="both_unsafe", rationale="both risky")
    out = export(store, "kto")
    rows = {}
    for r in out.rows:
        rows.setdefault(r["judgment_id"], []).append(r)
    assert [r["label"] for r in rows[bad.id]] == [False, False]
    assert sorted((r["completion"][0]["content"], r["label"]) for r in rows[win.id]) == [
        ("good answer [1]", True),
        ("poor answer", False),
    ]
    assert [r["label"] for r in rows[both_unsafe.id]] == [False, False]
    assert tie.id in reasons(out)
    assert all(set(r) >= {"prompt", "completion", "label"} and isinstance(r["label"], bool) for r in out.rows)


def test_battles_use_shown_sides_and_arena_winner_names(store):
    judged(store, "A", left="b")
    judged(store, "both_bad")
    rows = export(store, "battles").rows
    assert (
        rows[0]["model_a"] == "v-poor" and rows[0]["model_b"] == "v-good" and rows[0]["winner"] == "model_a"
    )
    assert rows[1]["winner"] == "tie (bothbad)"
    import time

    assert (
        abs(rows[0]["tstamp"] - time.time()) < 600
    )  # stored in UTC, read back as UTC whatever the local zone


def test_a_response_naming_its_variant_is_excluded(store):
    _, j = judged(store, "A", texts=("As v-good I say INR 2-3.", "poor"))
    assert "names its own" in reasons(export(store, "dpo"))[j.id]


def test_the_raw_export_keeps_everything_with_provenance(store, tmp_path):
    c, first = judged(store, "A")
    store.submit(JudgmentIn(c.id, "ann", "tie", "", "both_safe"))
    out = export(store, "jsonl")
    assert [r["status"] for r in out.rows] == ["superseded", "submitted"]
    left = out.rows[0]["left"]
    assert {"variant", "model", "quantization", "generation", "seed", "k", "chunk_ids", "prompt_hash"} <= set(
        left
    )
    path, excluded = write_export(out, tmp_path / "raw.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["supersedes_id"] == first.id
    assert excluded.read_text() == ""


def test_dpo_and_reward_files_load_with_datasets_in_trl_columns(store, tmp_path):
    datasets = pytest.importorskip("datasets", reason="the datasets library is not installed")
    judged(store, "A", strength="significantly")
    judged(store, "B", left="b", strength="slightly")
    for fmt in ("dpo", "reward"):
        path, _ = write_export(export(store, fmt), tmp_path / f"{fmt}.jsonl")
        ds = datasets.load_dataset("json", data_files=str(path), split="train")
        assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
        assert ds[0]["prompt"][0] == {"role": "user", "content": "What is a normal INR?"}
        assert ds[0]["chosen"][0]["role"] == "assistant"
        if fmt == "reward":
            assert ds.features["margin"].dtype in ("float64", "float32")


def test_the_cli_exports_and_reports_exclusions(store, tmp_path, settings, monkeypatch):
    from click.testing import CliRunner

    from chatbot.cli import main

    monkeypatch.setenv("MEDCHAT_PREFS__DB_URL", store.url)
    judged(store, "A")
    judged(store, "tie")
    out = tmp_path / "x" / "dpo.jsonl"
    result = CliRunner().invoke(main, ["export", "--format", "dpo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 rows written" in result.output and "1 judgments excluded" in result.output
    assert len(out.read_text().splitlines()) == 1
    assert "tie" in (tmp_path / "x" / "dpo.excluded.jsonl").read_text()


def test_bradley_terry_orders_variants_and_counts_ties_half():
    battles = (
        [("a", "b", 1.0)] * 30 + [("a", "b", 0.0)] * 10 + [("b", "c", 1.0)] * 30 + [("b", "c", 0.0)] * 10
    )
    r = fit_bradley_terry(battles)
    assert r["a"] > r["b"] > r["c"]
    # 3:1 odds is about 191 Elo points
    assert r["a"] - r["b"] == pytest.approx(400 * math.log10(3), abs=10)
    even = fit_bradley_terry([("x", "y", 0.5)] * 20)
    assert even["x"] == pytest.approx(even["y"])
    board = leaderboard(battles, rounds=50)
    assert [x.variant for x in board] == ["a", "b", "c"]
    assert all(x.lower <= x.rating <= x.upper for x in board)


def test_the_leaderboard_does_not_depend_on_vote_order():
    battles = [("a", "b", 1.0)] * 5 + [("b", "a", 1.0)] * 3 + [("a", "c", 0.5)] * 4
    assert fit_bradley_terry(battles) == pytest.approx(fit_bradley_terry(list(reversed(battles))))


def test_kappas_match_hand_computed_values():
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "a", "b", "b"]) == pytest.approx(1.0)
    # observed 0.5, expected 0.5 -> 0
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)
    assert fleiss_kappa([["a", "a"], ["b", "b"], ["a", "a"]]) == pytest.approx(1.0)
    assert fleiss_kappa([["a", "b"], ["b", "a"]]) == pytest.approx(-1.0)


def test_results_report_left_rate_gold_accuracy_and_agreement(store):
    judged(store, "A", annotator="x", gold=True)  # slot a (the gold better) on the left, picked: correct
    judged(store, "A", annotator="x", left="b", gold=True)  # picked the worse: wrong
    c, _ = judged(store, "A", annotator="x", left="a")
    store.assign(c.id, "y", "b")
    store.submit(JudgmentIn(c.id, "y", "B", "better", "both_safe"))  # same response, other side
    r = results(store, rounds=20)
    x = next(a for a in r.annotators if a["annotator"] == "x")
    assert x["gold_accuracy"] == 0.5 and x["left_rate"] == 1.0 and x["judgments"] == 3
    assert r.overlapping_items == 1
    assert r.fleiss is None  # one item, one category: chance agreement is 1 and kappa is undefined
    assert r.ratings[0].variant == "v-good"


def test_the_results_tab_exports_through_the_running_app(store, settings):
    """The Export button's endpoint on a live app returns the rows file and the exclusions file."""
    import socket

    from gradio_client import Client

    from chatbot.chain import Chain
    from chatbot.engines.fake import FakeEngine
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import Users
    from chatbot.variants import Variant

    judged(store, "A", strength="significantly")
    judged(store, "tie")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    variants = [Variant("v-good", k=2), Variant("v-poor", k=3)]
    app = build_app(Chain(settings, engine=FakeEngine()), store=store, variants=variants, users=Users({}))
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        files, note = client.predict("reward", api_name="/export")
        assert "1 rows; 1 judgments excluded" in note
        texts = {Path(f).name: Path(f).read_text() for f in files}
        rows = [json.loads(line) for line in texts["medchat-reward.jsonl"].splitlines()]
        assert len(rows) == 1 and rows[0]["margin"] == 1.0
        assert "tie" in texts["medchat-reward.excluded.jsonl"]
        summary = client.predict(api_name="/results")[0]
        assert "**2** submitted judgments" in summary
    finally:
        app.close()


def test_results_and_exports_are_for_admins_only(store, settings):
    import socket

    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from chatbot.chain import Chain
    from chatbot.engines.fake import FakeEngine
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import User, Users, hash_password
    from chatbot.variants import Variant

    judged(store, "A")
    users = Users(
        {
            "boss": User("boss", "lead", hash_password("b", iterations=1000), admin=True),
            "ann": User("ann", "nurse", hash_password("a", iterations=1000)),
        }
    )
    assert users.is_admin("boss") and not users.is_admin("ann") and not users.is_admin(None)
    assert Users({}).is_admin(None)  # no logins: the one local user
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    variants = [Variant("v-good"), Variant("v-poor")]
    app = build_app(Chain(settings, engine=FakeEngine()), store=store, variants=variants, users=users)
    app.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, auth=users.check
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(AppError, match="admins only"):
            Client(url, auth=("ann", "a"), verbose=False).predict("dpo", api_name="/export")
        with pytest.raises(AppError, match="admins only"):
            Client(url, auth=("ann", "a"), verbose=False).predict(api_name="/results")
        assert (
            "**1** submitted"
            in Client(url, auth=("boss", "b"), verbose=False).predict(api_name="/results")[0]
        )
    finally:
        app.close()
