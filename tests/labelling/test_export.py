"""Exports: TRL preference / reward / KTO rows, arena battles, raw judgments; every exclusion has a reason.
Also the Bradley-Terry leaderboard and the agreement statistics."""

import json
import math
from pathlib import Path

import pytest

from chatbot.labelling.export import (
    FORMATS,
    SMALL_MARGIN,
    ExportError,
    SelectOptions,
    export,
    response_prompt,
    select_examples,
    select_pairs,
    write_export,
)
from chatbot.labelling.leaderboard import cohen_kappa, fit_bradley_terry, fleiss_kappa, leaderboard, results
from chatbot.labelling.store.prefs import JudgmentIn, PreferenceStore, ResponseIn
from prompts import PromptVariant, build_prompt, rebuild_prompt

QUESTION = "What is a normal INR?"
PASSAGES = ("The INR target for most patients on warfarin is 2 to 3.", "Check the INR weekly at first.")


@pytest.fixture
def store(tmp_path):
    s = PreferenceStore(f"sqlite:///{tmp_path / 'prefs.sqlite3'}")
    yield s
    s.close()


def response(
    variant,
    text,
    *,
    exemplar="cited_answer",
    persona="clinician_to_patient",
    passages=PASSAGES,
    question=QUESTION,
    store=True,
):
    """A response as `ResponseIn.from_answer` stores it: the prompt's messages, hash and stored answer."""
    pv = PromptVariant(exemplar=exemplar, persona=persona)
    built = build_prompt(question, [type("P", (), {"text": t})() for t in passages], pv)
    answer = {
        "question": question,
        "query": question,
        "sources": [{"n": n, "text": t} for n, t in enumerate(passages, start=1)],
        "variant": pv.as_dict(),
    }
    messages = [{"role": m.role, "content": m.content} for m in built.messages]
    return ResponseIn(
        variant,
        text,
        model="m",
        prompt_hash=built.hash,
        prompt_messages=messages if store else [],
        answer=answer,
        chunk_ids=["c1"],
        seed=0,
        k=len(passages),
    )


def pair(
    store,
    *,
    texts=("good answer [1]", "poor answer"),
    variants=("v-good", "v-poor"),
    gold=False,
    other_exemplar="cited_answer",
    **kw,
):
    """Two answers from one prompt (two sampling settings), or from two when `other_exemplar` differs."""
    return store.create_comparison(
        QUESTION,
        response(variants[0], texts[0], **kw),
        response(variants[1], texts[1], exemplar=other_exemplar),
        created_by="admin",
        is_gold=gold,
    )


def vote(store, c, annotator, choice, strength=None, safety_bin="both_safe", left="a", **kw):
    if strength is None:
        strength = "" if choice in ("tie", "both_bad") else "better"
    store.assign(c.id, annotator, left)
    return store.submit(JudgmentIn(c.id, annotator, choice, strength, safety_bin, **kw))


def judged(store, choice, *, annotator="ann", left="a", gold=False, texts=None, **kw):
    c = pair(store, gold=gold, **({"texts": texts} if texts else {}))
    return c, vote(store, c, annotator, choice, left=left, **kw)


def reasons(result):
    return {e["judgment_id"]: e["reason"] for e in result.excluded}


def test_dpo_rows_hold_the_prompt_the_model_saw_as_messages(store):
    c, j = judged(store, "B", left="b")  # B (right) showed slot a, the good answer
    out = export(store, "dpo")
    assert out.excluded == []
    (row,) = out.rows
    roles = [m["role"] for m in row["prompt"]]
    # system (persona, task, format, tone), the worked example turn, then passages and question
    assert roles == ["system", "user", "assistant", "user"]
    last = row["prompt"][-1]["content"]
    assert f"[1] {PASSAGES[0]}" in last and f"[2] {PASSAGES[1]}" in last and QUESTION in last
    # the one prompt both answers were written from
    assert (
        row["prompt"]
        == store.responses(c.id)["a"].prompt_messages
        == store.responses(c.id)["b"].prompt_messages
    )
    assert row["prompt_from"] == "chosen" and row["same_prompt"] is True
    assert row["chosen"] == [{"role": "assistant", "content": "good answer [1]"}]
    assert row["rejected"] == [{"role": "assistant", "content": "poor answer"}]
    assert row["judgment_ids"] == [j.id] and row["votes"]["chosen"] == 1


def test_a_response_stored_without_its_messages_gets_them_rebuilt_and_checked_by_hash(store):
    c = store.create_comparison(
        QUESTION,
        response("v1", "INR 2-3 [1]", store=False),
        response("v2", "no idea", store=False),
        created_by="x",
    )
    vote(store, c, "ann", "A")
    (row,) = export(store, "dpo").rows
    assert row["prompt"] == response("v1", "").prompt_messages and row["same_prompt"] is True
    # the passages stored with the answer no longer give the hash: never train on a guessed prompt
    wrong = response("v3", "x [1]", store=False)
    wrong.answer["sources"][0]["text"] = "edited since"
    c2 = store.create_comparison(QUESTION, wrong, response("v4", "y", store=False), created_by="x")
    j2 = vote(store, c2, "ann", "A")
    out = export(store, "dpo")
    assert "cannot be rebuilt" in reasons(out)[j2.id]
    assert rebuild_prompt(QUESTION, PASSAGES, response("v", "").answer["variant"], "0" * 16) is None


def test_compared_answers_export_with_the_messages_the_engine_was_given(few_index, settings, embedder, store):
    """Through the Compare service with a real index: the exported prompt is the engine's input."""
    from chatbot.chain import Chain
    from chatbot.labelling.service import CompareService
    from chatbot.labelling.variants import Variant, VariantRunner
    from chatbot.retrieval import open_retriever
    from tests.labelling.test_compare import PerTemperatureEngine

    engine = PerTemperatureEngine()
    chain = Chain(settings, retriever=open_retriever(settings, embedder), engine=engine)
    patient, colleague = {"persona": "clinician_to_patient"}, {"persona": "clinician_to_colleague"}
    one_prompt = [  # two sampling settings of one prompt: what a preference pair must be
        Variant("warm", prompt=patient, k=2, generation={"temperature": 0.7, "grounding": "free"}),
        Variant("cold", prompt=patient, k=2, generation={"temperature": 0.0, "grounding": "free"}),
    ]
    service = CompareService(store, VariantRunner(chain, one_prompt), settings)
    question = "What INR range is the target for patients on warfarin?"
    r = list(service.ask("ann", question))[-1].round
    store.submit(JudgmentIn(r.comparison_id, "ann", "A", "better", "both_safe"))
    (row,) = export(store, "dpo").rows
    sent = [[{"role": m.role, "content": m.content} for m in call] for call in engine.calls]
    assert len(sent) == 2 and sent[0] == sent[1] == row["prompt"]
    # what the annotator judged: the shown text (the model's "[1]" is checked, and marked where the
    # passage does not say it)
    assert row["chosen_variant"] == r.left.variant and row["chosen"][0]["content"] == r.left.text
    last = row["prompt"][-1]["content"]
    assert question in last and "[1] " in last and "arfarin" in last  # the numbered passages it cites
    assert row["prompt"][0]["role"] == "system"
    # two personas and two k (the pair): never a dpo row; the mixed-prompt export shows both prompts
    engine.calls.clear()
    two = [
        Variant("patient", prompt=patient, k=2, generation={"temperature": 0.7, "grounding": "free"}),
        Variant("colleague", prompt=colleague, k=3, generation={"temperature": 0.0, "grounding": "free"}),
    ]
    two_prompts = CompareService(store, VariantRunner(chain, two), settings)
    r2 = list(two_prompts.ask("ann", question))[-1].round
    store.submit(JudgmentIn(r2.comparison_id, "ann", "A", "better", "both_safe"))
    assert [x["comparison_id"] for x in export(store, "dpo").rows] == [r.comparison_id]
    (mixed,) = export(store, "mixed-prompt").rows
    sent = [[{"role": m.role, "content": m.content} for m in call] for call in engine.calls]
    assert sorted(map(json.dumps, (mixed["chosen_prompt"], mixed["rejected_prompt"]))) == sorted(
        map(json.dumps, sent)
    )
    assert "system prompt" in mixed["difference"]


def test_a_database_from_before_the_prompt_column_is_migrated_and_still_exports(store, tmp_path):
    from sqlalchemy import text

    c = pair(store)
    vote(store, c, "ann", "A")
    with store.engine.begin() as conn:  # the schema as it was before m004
        conn.execute(text("ALTER TABLE responses DROP COLUMN prompt_messages"))
        conn.execute(text("DELETE FROM _medchat_migrations WHERE name = 'm004_export_prompt_messages'"))
    store.close()
    again = PreferenceStore(store.url)
    try:
        assert again.applied == ["m004_export_prompt_messages"]
        assert again.responses(c.id)["a"].prompt_messages is None
        (row,) = export(again, "dpo").rows  # rebuilt from the stored answer, checked against its hash
        assert row["prompt"] == response("v-good", "").prompt_messages
    finally:
        again.close()


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
    second = store.submit(JudgmentIn(c.id, "eve", "B", "slightly", "both_safe", edit=True))
    _, kept = judged(store, "A", safety_bin="one_unsafe", unsafe_side="B", rationale="B unsafe")
    out = export(store, "dpo")
    why = reasons(out)
    assert "tie" in why[tie.id]
    assert "both bad" in why[bad.id]
    assert "unsafe" in why[unsafe.id] and "never used" in why[unsafe.id]
    assert "gold" in why[gold.id]
    assert "superseded" in why[first.id]
    assert second.id not in why  # the changed vote counts: it is the annotator's vote now
    assert [r["judgment_ids"] for r in out.rows] == [[second.id], [kept.id]]
    # every stored judgment is either behind a row or excluded, once
    used = [j for r in out.rows for j in r["judgment_ids"]]
    assert sorted(used + list(why)) == sorted(j.id for j in store.judgments(status=None))
    assert out.counts == {
        "tie": 1,
        "both bad": 1,
        "unsafe preferred": 1,
        "gold": 1,
        "superseded": 1,
    }


def test_opposite_votes_on_one_pair_are_dropped_not_exported_twice(store):
    c = pair(store)
    j1 = vote(store, c, "ann", "A")  # slot a
    j2 = vote(store, c, "bob", "A", left="b")  # bob saw slot b on the left: he preferred slot b
    out = export(store, "dpo")
    assert out.rows == []
    assert {e["judgment_id"] for e in out.excluded} == {j1.id, j2.id}
    assert all("no outcome leads" in e["reason"] for e in out.excluded)
    assert select_pairs(store).counts == {"no majority": 2}
    # a third annotator breaks the tie: one row, three votes behind it
    j3 = vote(store, c, "cy", "B", left="b")  # slot a again
    (row,) = export(store, "dpo").rows
    assert row["chosen"][0]["content"] == "good answer [1]"
    assert row["votes"] == {"chosen": 2.0, "rejected": 1.0, "tie": 0.0, "both_bad": 0.0}
    assert sorted(row["judgment_ids"]) == sorted([j1.id, j2.id, j3.id])
    assert sorted(row["annotators"]) == ["ann", "bob", "cy"]


def test_strength_weighting_lets_a_strong_vote_outweigh_a_weak_one(store):
    c = pair(store)
    vote(store, c, "ann", "A", strength="significantly")  # slot a, weight 3
    vote(store, c, "bob", "B", strength="slightly")  # slot b, weight 1
    assert export(store, "dpo").rows == []  # majority: 1 against 1
    (row,) = export(store, "reward", SelectOptions(aggregate="strength")).rows
    assert row["chosen"][0]["content"] == "good answer [1]"
    assert row["votes"]["chosen"] == 3.0 and row["votes"]["rejected"] == 1.0
    assert row["aggregate"] == "strength" and row["margin"] == 1.0  # the margin of the winning votes
    c2 = pair(store)
    vote(store, c2, "ann", "A", strength="slightly")  # 1 against a tie's 1: dropped
    vote(store, c2, "bob", "tie", strength="")
    assert len(export(store, "dpo", SelectOptions(aggregate="strength")).rows) == 1
    with pytest.raises(Exception, match="unknown aggregation 'mean'"):
        SelectOptions(aggregate="mean")


def test_a_winner_another_annotator_judged_unsafe_is_never_chosen(store):
    c = pair(store)
    vote(store, c, "ann", "A")
    vote(store, c, "bob", "A")
    vote(store, c, "cy", "B", safety_bin="one_unsafe", unsafe_side="A", rationale="dose is wrong")
    out = select_pairs(store)
    assert out.pairs == [] and out.counts == {"unsafe preferred": 3}


def test_same_prompt_only_keeps_pairs_written_from_one_prompt(store):
    vote(store, pair(store, other_exemplar="none"), "ann", "A")  # different exemplars: different prompts
    c = store.create_comparison(QUESTION, response("v1", "a [1]"), response("v2", "b"), created_by="x")
    vote(store, c, "ann", "A")
    sel = select_pairs(store, SelectOptions(same_prompt_only=True))
    assert [p.comparison_id for p in sel.pairs] == [c.id] and sel.pairs[0].same_prompt
    assert sel.counts == {"different prompts": 1}
    assert "1 pairs from 1 judgments" in sel.summary()


def test_every_dpo_and_reward_row_holds_the_one_prompt_both_its_answers_were_written_from(store):
    """Issue 27 item 16: a rejected answer cited [4], absent from the row's prompt (its variant had
    retrieved more passages), and a colleague-persona answer was paired under the patient system prompt."""
    same = pair(store)
    more = store.create_comparison(
        QUESTION,
        response("k2", "INR 2 to 3 [1]"),
        response("k4", "Vitamin K reverses it [4]", passages=(*PASSAGES, "Bleeding risk.", "Vitamin K.")),
        created_by="x",
    )
    persona = store.create_comparison(
        QUESTION,
        response("patient", "Your INR should be 2 to 3 [1]"),
        response("colleague", "- target INR 2-3 [1]", persona="clinician_to_colleague"),
        created_by="x",
    )
    abstention = ResponseIn("abstains", "I cannot answer that from the sources.", answer={"abstained": True})
    abstained = store.create_comparison(QUESTION, response("v", "INR 2-3 [1]"), abstention, created_by="x")
    quotes = response("sources-quoted", "The INR target is 2 to 3. [1]")  # grounding: extractive
    quotes.model, quotes.answer["grounding"] = "extractive", "extractive"  # its prompt went to no model
    quoted = store.create_comparison(QUESTION, quotes, response("v", "INR 2-3 [1]"), created_by="x")
    judgments = {c.id: vote(store, c, "ann", "A") for c in (same, more, persona, abstained, quoted)}
    responses = store.all_responses()
    for fmt in ("dpo", "reward"):
        for options in (SelectOptions(), SelectOptions(same_prompt_only=False)):
            out = export(store, fmt, options)
            assert [r["comparison_id"] for r in out.rows] == [same.id], fmt
            for row in out.rows:
                for side in ("chosen", "rejected"):
                    answer = responses[row[f"{side}_response_id"]]
                    assert response_prompt(answer) == row["prompt"], (fmt, side)
                    assert answer.prompt_hash == responses[row["chosen_response_id"]].prompt_hash
                assert row["same_prompt"] is True
            assert out.counts == {"different prompts": 4}
            summary = out.summary()
            assert "different prompts: 4" in summary and "4 pairs in the mixed-prompt export" in summary
            why = reasons(out)
            assert "passages or question" in why[judgments[more.id].id]
            assert "system prompt" in why[judgments[persona.id].id]
            assert "not written by the model from a prompt" in why[judgments[abstained.id].id]
            assert "quotes the passages" in why[judgments[quoted.id].id]
            assert all("mixed-prompt export" in why[j.id] for c, j in judgments.items() if c != same.id)


def test_pairs_whose_answers_saw_different_prompts_go_to_the_mixed_prompt_export(store, tmp_path):
    one = pair(store)
    two = pair(store, other_exemplar="none")
    vote(store, one, "ann", "A")
    j = vote(store, two, "ann", "A", strength="significantly")
    assert "mixed-prompt" in FORMATS
    out = export(store, "mixed-prompt")
    (row,) = out.rows
    responses = store.responses(two.id)
    assert row["comparison_id"] == two.id and row["judgment_ids"] == [j.id]
    assert "prompt" not in row  # no trainer can take it for a preference file
    assert row["chosen_prompt"] == responses["a"].prompt_messages
    assert row["rejected_prompt"] == responses["b"].prompt_messages != row["chosen_prompt"]
    assert row["chosen"] == [{"role": "assistant", "content": "good answer [1]"}]
    assert row["rejected"] == [{"role": "assistant", "content": "poor answer"}]
    assert "worked example" in row["difference"] and row["margin"] == 1.0
    # every judgment is accounted for: the one-prompt pair is a dpo row, not lost
    assert out.counts == {"same prompt": 1}
    path, _ = write_export(out, tmp_path / "mixed.jsonl")
    assert json.loads(path.read_text())["comparison_id"] == two.id
    assert path.stat().st_mode & 0o777 == 0o600


def test_kto_both_bad_gives_two_negatives_and_unsafe_is_never_desirable(store):
    _, bad = judged(store, "both_bad")
    c = pair(store, other_exemplar="none")  # KTO rows are unpaired: each answer keeps its own prompt
    win = vote(store, c, "ann", "A", left="a")
    _, tie = judged(store, "tie")
    _, both_unsafe = judged(store, "A", safety_bin="both_unsafe", rationale="both risky")
    out = export(store, "kto")
    rows = {}
    for r in out.rows:
        for j in r["judgment_ids"]:
            rows.setdefault(j, []).append(r)
    assert [r["label"] for r in rows[bad.id]] == [False, False]
    assert sorted((r["completion"][0]["content"], r["label"]) for r in rows[win.id]) == [
        ("good answer [1]", True),
        ("poor answer", False),
    ]
    # each answer comes with its own prompt: the one it was written from
    by_text = {r["completion"][0]["content"]: r for r in rows[win.id]}
    responses = store.responses(c.id)
    assert by_text["good answer [1]"]["prompt"] == responses["a"].prompt_messages
    assert by_text["poor answer"]["prompt"] == responses["b"].prompt_messages
    assert [r["label"] for r in rows[both_unsafe.id]] == [False, False]
    assert tie.id in reasons(out)
    assert all(set(r) >= {"prompt", "completion", "label"} and isinstance(r["label"], bool) for r in out.rows)


def test_kto_aggregates_too(store):
    c = pair(store)
    vote(store, c, "ann", "A")
    vote(store, c, "bob", "A", left="b")
    sel = select_examples(store)
    assert sel.examples == [] and sel.counts == {"no majority": 2}


def test_a_changed_vote_appears_once_in_every_export_as_the_new_vote(store):
    """Issue 27 item 15: "Change my vote" dropped both the old and the new vote from the exports."""
    c, old = judged(store, "B", left="a")  # B (right) is slot b, the poor answer
    new = store.submit(JudgmentIn(c.id, "ann", "A", "significantly", "both_safe", edit=True))
    assert new.after_reveal and new.supersedes_id == old.id
    for fmt in ("dpo", "reward"):
        out = export(store, fmt)
        (row,) = out.rows
        assert row["judgment_ids"] == [new.id], fmt
        assert row["chosen"][0]["content"] == "good answer [1]" and row["votes"]["chosen"] == 1
        assert [e["judgment_id"] for e in out.excluded] == [old.id] and out.counts == {"superseded": 1}
    assert export(store, "reward").rows[0]["margin"] == 1.0  # the new vote's strength
    kto = export(store, "kto").rows
    assert {j for r in kto for j in r["judgment_ids"]} == {new.id}
    assert sorted((r["completion"][0]["content"], r["label"]) for r in kto) == [
        ("good answer [1]", True),
        ("poor answer", False),
    ]
    (battle,) = export(store, "battles").rows
    assert battle["judgment_id"] == new.id and battle["winner"] == "model_a" and battle["after_reveal"]
    raw = export(store, "jsonl")
    (row,) = raw.rows  # the vote once, as it stands now; what it replaced travels inside it
    assert row["judgment_id"] == new.id and row["choice"] == "A" and row["status"] == "submitted"
    assert [(e["judgment_id"], e["choice"], e["status"]) for e in row["earlier"]] == [
        (old.id, "B", "superseded")
    ]
    # the old flag is kept for callers of the earlier API; it no longer hides a changed vote
    assert export(store, "dpo", SelectOptions(include_after_reveal=False)).rows[0]["judgment_ids"] == [new.id]


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
    second = store.submit(JudgmentIn(c.id, "ann", "tie", "", "both_safe", edit=True))
    third = store.submit(JudgmentIn(c.id, "ann", "B", "slightly", "both_safe", edit=True))
    _, other = judged(store, "A", annotator="bob")
    out = export(store, "jsonl")
    assert [(r["judgment_id"], r["status"]) for r in out.rows] == [
        (third.id, "submitted"),
        (other.id, "submitted"),
    ]
    # nothing is lost: the votes a changed vote replaced are inside its row, newest first
    assert [e["judgment_id"] for e in out.rows[0]["earlier"]] == [second.id, first.id]
    assert [e["choice"] for e in out.rows[0]["earlier"]] == ["tie", "A"] and out.rows[1]["earlier"] == []
    left = out.rows[0]["left"]
    assert {"variant", "model", "quantization", "generation", "seed", "k", "chunk_ids", "prompt_hash"} <= set(
        left
    )
    assert left["prompt_messages"][0]["role"] == "system"
    path, excluded = write_export(out, tmp_path / "raw.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["supersedes_id"] == second.id
    assert excluded.read_text() == ""
    assert path.stat().st_mode & 0o777 == 0o600 and excluded.stat().st_mode & 0o777 == 0o600


def test_the_raw_export_keeps_what_the_model_wrote_before_the_grounding_check(store):
    """`Answer.raw_text` (the model's words) is stored beside `text` (what the annotator was shown);
    training rows use the shown text, the judgment was about it."""
    from chatbot.chain import Answer

    checked = Answer(QUESTION, "The INR target is 2 to 3. [1]", passages=[])
    checked.raw_text = "The INR target is 2 to 3. [1] Eat no green vegetables."
    plain = Answer(QUESTION, "INR 2-3.", passages=[])  # no raw text: the shown text is the model's
    kept = [
        ResponseIn.from_answer(a, variant=v, variant_config={}, generation={}, k=2)
        for a, v in ((checked, "v1"), (plain, "v2"))
    ]
    assert [r.raw_text for r in kept] == [checked.raw_text, "INR 2-3."]
    shown = response("v-good", "good answer [1]")
    shown.raw_text = "good answer [1] and an unsupported claim"
    c = store.create_comparison(QUESTION, shown, response("v-poor", "poor answer"), created_by="x")
    vote(store, c, "ann", "A")
    stored = store.responses(c.id)
    assert stored["a"].raw_text == shown.raw_text and stored["b"].raw_text is None
    (raw,) = export(store, "jsonl").rows
    assert raw["left"]["raw_text"] == shown.raw_text and raw["left"]["text"] == "good answer [1]"
    assert raw["right"]["raw_text"] is None
    (row,) = export(store, "dpo").rows
    assert row["chosen"] == [{"role": "assistant", "content": "good answer [1]"}]
    assert all(r["completion"][0]["content"] != shown.raw_text for r in export(store, "kto").rows)


def test_a_database_from_before_the_raw_text_column_is_migrated(store):
    from sqlalchemy import text

    c = pair(store)
    vote(store, c, "ann", "A")
    with store.engine.begin() as conn:  # the schema as it was before m005
        conn.execute(text("ALTER TABLE responses DROP COLUMN raw_text"))
        conn.execute(text("DELETE FROM _medchat_migrations WHERE name = 'm005_response_raw_text'"))
    store.close()
    again = PreferenceStore(store.url)
    try:
        assert again.applied == ["m005_response_raw_text"]
        assert again.responses(c.id)["a"].raw_text is None  # not known for answers stored before
        (raw,) = export(again, "jsonl").rows
        assert raw["left"]["raw_text"] is None and raw["left"]["text"] == "good answer [1]"
        assert len(export(again, "dpo").rows) == 1
    finally:
        again.close()


def test_dpo_reward_and_kto_files_load_with_datasets_in_trl_conversational_format(store, tmp_path):
    datasets = pytest.importorskip("datasets", reason="the datasets library is not installed")
    judged(store, "A", strength="significantly")
    judged(store, "B", left="b", strength="slightly")
    judged(store, "both_bad")
    loaded = {}
    for fmt in ("dpo", "reward", "kto"):
        path, _ = write_export(export(store, fmt), tmp_path / f"{fmt}.jsonl")
        loaded[fmt] = ds = datasets.load_dataset("json", data_files=str(path), split="train")
        assert ds[0]["prompt"][0]["role"] == "system" and ds[0]["prompt"][-1]["role"] == "user"
        assert QUESTION in ds[0]["prompt"][-1]["content"]
    for fmt in ("dpo", "reward"):
        ds = loaded[fmt]
        assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) == 2
        assert ds[0]["chosen"] == [{"role": "assistant", "content": "good answer [1]"}]
    assert loaded["reward"].features["margin"].dtype in ("float64", "float32")
    kto = loaded["kto"]
    assert {"prompt", "completion", "label"} <= set(kto.column_names) and len(kto) == 6
    assert kto.features["label"].dtype == "bool"
    try:
        from trl.data_utils import is_conversational, maybe_apply_chat_template
    except ImportError:
        return
    # TRL's own view of the rows: conversational, and its chat templating keeps the passages
    tokenizer = _tokenizer_with_chat_template()
    for fmt in ("dpo", "kto"):
        example = loaded[fmt][0]
        assert is_conversational(example)
        text = maybe_apply_chat_template(example, tokenizer)
        answer = text.get("chosen", text.get("completion"))
        assert PASSAGES[0] in text["prompt"] and "good answer [1]" in answer


def _tokenizer_with_chat_template():
    """A small tokenizer with a ChatML template, built here (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", eos_token="[UNK]")
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tok


def test_the_cli_exports_aggregates_and_reports_exclusions(store, tmp_path, settings, monkeypatch):
    from click.testing import CliRunner

    from chatbot.cli import main

    monkeypatch.setenv("MEDCHAT_PREFS__DB_URL", store.url)
    judged(store, "A")
    judged(store, "tie")
    c = pair(store)
    vote(store, c, "ann", "A", strength="significantly")
    vote(store, c, "bob", "B", strength="slightly")
    out = tmp_path / "x" / "dpo.jsonl"
    result = CliRunner().invoke(main, ["export", "--format", "dpo", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 rows written" in result.output and "3 judgments excluded" in result.output
    assert "no majority: 2" in result.output and "tie: 1" in result.output
    assert len(out.read_text().splitlines()) == 1
    assert "tie" in (tmp_path / "x" / "dpo.excluded.jsonl").read_text()
    assert out.stat().st_mode & 0o777 == 0o600
    args = ["export", "--format", "dpo", "--aggregate", "strength", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "2 rows written" in result.output, result.output
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    result = CliRunner().invoke(main, ["export", "--format", "kto", "-o", str(blocked / "kto.jsonl")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot write the export to" in result.output and "choose another place with -o" in result.output


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


@pytest.fixture
def live(store, settings):
    """A real server launched as `medchat serve` does, with an admin (boss) and an annotator (ann)."""
    from chatbot.chain import Chain
    from chatbot.engines.fake import FakeEngine
    from chatbot.labelling.variants import Variant
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import User, Users, hash_password
    from chatbot.ui.serve import launch_local

    users = Users(
        {
            "boss": User("boss", "lead", hash_password("b", iterations=1000), admin=True),
            "ann": User("ann", "nurse", hash_password("a", iterations=1000)),
        }
    )
    assert users.is_admin("boss") and not users.is_admin("ann") and not users.is_admin(None)
    assert Users({}).is_admin(None)  # no logins: the one local user
    variants = [Variant("v-good", k=2), Variant("v-poor", k=3)]
    app = build_app(Chain(settings, engine=FakeEngine()), store=store, variants=variants, users=users)
    url = launch_local(app, users)
    try:
        yield url
    finally:
        app.close()


def _signed_in(url, name=None, password=None):
    import httpx

    client = httpx.Client(base_url=url, timeout=60)
    if name:
        r = client.post("login", data={"username": name, "password": password})
        assert r.status_code == 200, r.text
    return client


def _call(client, api, *data):
    """Run an event through Gradio's HTTP API as the browser's session would; (status, payload)."""
    r = client.post(f"gradio_api/call/{api}", json={"data": list(data)})
    if r.status_code != 200:
        return "refused", r.text
    stream = client.get(f"gradio_api/call/{api}/{r.json()['event_id']}").text
    event = [line.split(": ", 1)[1] for line in stream.splitlines() if line.startswith("event: ")][-1]
    payload = [line.split(": ", 1)[1] for line in stream.splitlines() if line.startswith("data: ")][-1]
    return event, json.loads(payload)


def _gradio_files():
    import tempfile

    from gradio.utils import get_upload_folder

    found = set(Path(tempfile.gettempdir()).glob("medchat-export-*"))
    return found | {p for p in Path(get_upload_folder()).rglob("*") if p.is_file()}


def test_export_files_reach_admins_only_on_every_path_and_leave_nothing_on_disk(store, live):
    """Issue 13 item 10 and issue 14 item 8, over real HTTP: the admin's Export gives links to
    files built on request; the annotator who has those links, or guesses Gradio file URLs, or calls
    the export API, is refused; nothing is written under /tmp or into Gradio's temp folder."""
    import re
    from urllib.parse import urljoin

    c, _ = judged(store, "A", strength="significantly", rationale="MARKER-rationale")
    judged(store, "tie")
    before = _gradio_files()
    boss, ann, nobody = _signed_in(live, "boss", "b"), _signed_in(live, "ann", "a"), _signed_in(live)

    event, (links, note) = _call(boss, "export", "reward", "majority")
    assert event == "complete", links
    assert "1 pairs from 1 judgments" in note and "tie: 1" in note
    urls = [urljoin(live, u) for u in re.findall(r"\]\(([^)]+)\)", json.dumps(links))]
    urls += [urljoin(live, u) for u in re.findall(r'"url": "([^"]+)"', json.dumps(links))]
    assert len(urls) == 2
    got = boss.get(urls[0])
    assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
    assert got.headers["cache-control"] == "no-store"
    assert [json.loads(line) for line in got.text.splitlines()] == json.loads(
        json.dumps(export(store, "reward").rows, default=str)
    )
    assert "tie" in boss.get(urls[1]).text
    for url in urls:  # the very links the admin got
        for who, status in ((ann, 403), (nobody, 401)):
            r = who.get(url)
            assert r.status_code == status and c.id not in r.text, (url, r.status_code)
        assert "admins only" in ann.get(url).text
    assert "admins only" in str(_call(ann, "export", "dpo", "majority")[1])
    # nothing new on disk that Gradio's file routes could hand out
    new = _gradio_files() - before
    assert not [p for p in new if "medchat-export" in str(p) or c.id in p.read_text(errors="ignore")]
    for prefix in ("gradio_api/file=", "file=", "gradio_api/file/"):
        for p in new:
            assert c.id not in ann.get(f"{prefix}{p}").text
    assert boss.get("medchat/export/nonsense.jsonl").status_code == 400
    assert boss.get("medchat/export/mixed-prompt.jsonl").status_code == 200
    assert ann.get("medchat/export/mixed-prompt.jsonl").status_code == 403
    assert "unknown aggregation" in boss.get("medchat/export/dpo.jsonl?aggregate=mean").text


def test_the_results_api_is_for_admins_only(store, live):
    judged(store, "A")
    assert "admins only" in str(_call(_signed_in(live, "ann", "a"), "results")[1])
    event, data = _call(_signed_in(live, "boss", "b"), "results")
    assert event == "complete" and "**1** submitted" in data[0]


@pytest.mark.slow  # a real browser against a real server
def test_in_the_browser_the_admin_downloads_and_an_annotator_with_the_link_is_refused(store, live, tmp_path):
    """What a person sees: the admin's Export gives a working download link; the same link opened by
    an annotator signed in on another browser shows the refusal, not the rows."""
    from playwright.sync_api import expect

    from tests.system.test_browser import CHROMIUM, FLAGS

    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    c, _ = judged(store, "A", strength="significantly")
    pw = sync_api.sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    except Exception as e:  # a chromium Playwright cannot drive is the environment, not a failure
        pw.stop()
        pytest.skip(f"cannot start {CHROMIUM} through Playwright: {e}")

    def signed_in(name, password):
        page = browser.new_context(accept_downloads=True).new_page()
        page.set_default_timeout(60_000)
        page.goto(live)
        page.get_by_label("username").fill(name)
        page.get_by_label("password").fill(password)
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_role("tab", name="Compare")).to_be_visible()
        return page

    try:
        admin = signed_in("boss", "b")
        admin.get_by_role("tab", name="Results").click()
        admin.locator("#res-export").click()
        link = admin.locator("#res-files a").first
        expect(link).to_contain_text("medchat-dpo.jsonl")
        with admin.expect_download() as download:
            link.click()
        rows = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
        assert [r["comparison_id"] for r in rows] == [c.id]
        href = link.get_attribute("href")
        annotator = signed_in("ann", "a")
        expect(annotator.get_by_role("tab", name="Results")).to_have_count(0)
        annotator.goto(live + href.lstrip("/"))
        expect(annotator.locator("body")).to_contain_text("admins only")
        assert c.id not in annotator.content()
    finally:
        browser.close()
        pw.stop()


def test_every_registered_format_is_written_and_offered_by_the_command_line(store):
    """One registry of export formats: the exporter, `medchat export --format` and the Results tab
    all take their list from `FORMATS`."""
    from click.testing import CliRunner

    from chatbot.cli import main

    pair_ = pair(store)
    vote(store, pair_, "ann", "A")
    for name, fmt in FORMATS.items():
        result = export(store, name)
        assert result.format == name == fmt.name and fmt.summary
    assert len(export(store, "battles").rows) == 1 and len(export(store, "dpo").rows) == 1
    option = next(p for p in main.commands["export"].params if p.name == "fmt")
    assert list(option.type.choices) == list(FORMATS)
    with pytest.raises(ExportError, match="use one of dpo, reward"):
        export(store, "csv")
    assert all(f"{f.name}: {f.summary}" in option.help for f in FORMATS.values())
    assert CliRunner().invoke(main, ["export", "--help"]).exit_code == 0
