"""How the rules and the classifier are decided together, and how the thresholds and the dev split are
made: the rules threshold (a rule's alarm needs the classifier's agreement), the hand-written data's
split by author and its weight in the choice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chatbot.triage import HEAD_FILE, Head, Triage, dataset, thresholds

STROKE = "my dad's face has dropped on one side and he can't lift his arm"


@pytest.fixture(scope="module")
def embedder():
    from ingestion.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def head_with(tmp_path, **levels):
    head = Head.load(HEAD_FILE)  # the frozen head: no adapters, quick to load
    head.thresholds = {k: v for k, v in {**head.thresholds, **levels}.items() if v is not None}
    path = tmp_path / "head.npz"
    head.save(path)
    return path


def test_a_rule_alarm_the_classifier_does_not_back_is_not_raised_and_says_why(tmp_path, embedder):
    path = head_with(tmp_path, emergency=0.9999, rules=0.9999)
    r = Triage(head_path=path, embedder=embedder).assess(STROKE)
    assert r.probability < 0.9999
    assert r.level != "emergency" and r.decided_by != "rules"
    said = " ".join(r.reasons)
    assert "rule 'stroke' fired" in said and "needs P(emergency) ≥ 1.00" in said and "not raised" in said


def test_with_a_low_rules_threshold_the_rule_raises_what_the_classifier_alone_would_not(tmp_path, embedder):
    path = head_with(tmp_path, emergency=0.9999, rules=0.01)
    r = Triage(head_path=path, embedder=embedder).assess(STROKE)
    assert r.probability >= 0.01
    assert (r.level, r.category, r.decided_by) == ("emergency", "stroke", "rules")


def test_a_file_without_a_rules_threshold_lets_the_rules_decide_as_before(tmp_path, embedder):
    path = head_with(tmp_path, emergency=0.9999, rules=None)
    assert "rules" not in Head.load(path).thresholds
    r = Triage(head_path=path, embedder=embedder).assess(STROKE)
    assert (r.level, r.decided_by) == ("emergency", "rules")


def test_raised_combines_both_thresholds():
    pe = np.array([0.9, 0.3, 0.3, 0.01])
    rules = np.array([False, True, False, True])
    got = thresholds.raised(pe, rules, {"emergency": 0.5, "rules": 0.2})
    assert got.tolist() == [True, True, False, False]
    assert thresholds.raised(pe, rules, {"emergency": 0.5}).tolist() == [True, True, False, True]


def test_the_rules_threshold_is_raised_only_when_rule_alarms_are_false_on_dev():
    # 10 emergencies the classifier is sure of; 10 routine messages a rule fires on, classifier unsure
    y = np.array([0] * 10 + [2] * 10)
    p = np.zeros((20, 3))
    p[:10, 0], p[10:, 0] = 0.9, 0.04
    p[:, 2] = 1 - p[:, 0]
    rules = np.array([False] * 10 + [True] * 10)
    th = thresholds.choose_thresholds(p, y, rules, target=0.97)
    assert th["rules"] > 0.04 and th["emergency"] <= 0.9  # the false rule alarms are overruled
    # now the rules are right: the same messages are emergencies, and the rules keep their say
    y[10:] = 0
    th = thresholds.choose_thresholds(p, y, rules, target=0.97)
    assert th["rules"] == 0.0


def test_hand_written_dev_messages_weigh_as_much_as_the_generated_ones_and_other_languages_nothing():
    rows = [{"template": f"gen.{i}"} for i in range(30)]
    rows += [{"template": f"hand/dev_x/{i}"} for i in range(10)]
    rows += [{"template": f"hand/dev_y/{i}", "lang": "es"} for i in range(5)]
    w = dataset.balance(rows)
    assert w[:30].sum() == pytest.approx(w[30:40].sum()) and w[0] == 1.0
    assert not w[40:].any()  # not English: reported, not used to choose the thresholds


def test_the_split_adds_each_authors_hand_written_file_and_names_a_bad_line(tmp_path, monkeypatch):
    (tmp_path / "handwritten").mkdir()
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"id": "g1", "text": "a", "level": "routine", "template": "t1"}) + "\n"
    )
    good = {"text": "my mum is grey and sweating with chest pain", "level": "emergency", "author": "w1"}
    (tmp_path / "handwritten" / "train_w1.jsonl").write_text(json.dumps(good) + "\n")
    (tmp_path / "handwritten" / "dev_w2.jsonl").write_text(json.dumps(good) + "\n")  # dev: not in train
    monkeypatch.setattr(dataset, "DATA", tmp_path)
    rows = dataset.split("train")
    assert [r["template"] for r in rows] == ["t1", "hand/train_w1/0"]
    bad = {"text": "help", "level": "critical"}
    (tmp_path / "handwritten" / "train_w3.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"train_w3\.jsonl line 2: needs a text and a level"):
        dataset.split("train")


@pytest.mark.parametrize(
    "needs_someone, message, vetoed",
    [
        (True, "asthma inhalers", True),  # files from before: every message
        (False, "asthma inhalers", False),
        (4, "warfarin INR target", True),  # a search of at most 4 words
        (4, "stabbed in the leg, theres a lot of blood", False),
        (4, "my dad is stabbed", False),  # names someone
    ],
)
def test_the_names_no_one_veto_follows_the_heads_setting(tmp_path, embedder, needs_someone, message, vetoed):
    head = Head.load(HEAD_FILE)
    head.thresholds = {**head.thresholds, "emergency": 0.0}  # every message clears it
    head.meta = {**head.meta, "needs_someone": needs_someone}
    path = tmp_path / "veto.npz"
    head.save(path)
    r = Triage(head_path=path, embedder=embedder).assess(message)
    assert r.emergency is not vetoed
    assert ("names no one" in " ".join(r.reasons)) is vetoed
    if vetoed:
        assert r.level == "routine"  # a search is not urgent either


def test_reframing_adds_neutral_framings_to_a_share_of_messages_reproducibly():
    import random

    from chatbot.triage import tune

    found = {"opener": ["hi all,"], "closer": ["thoughts?"]}
    texts = [f"message {i}" for i in range(600)]
    once = tune.reframe(texts, 0.3, found, random.Random(1))
    assert once == tune.reframe(texts, 0.3, found, random.Random(1))  # seeded: the same run twice
    changed = [(a, b) for a, b in zip(texts, once, strict=True) if a != b]
    assert 130 < len(changed) < 230  # about 30%
    assert all(b.startswith("hi all, message") or b.endswith(" thoughts?") for _, b in changed)
    assert {b.startswith("hi all,") for _, b in changed} == {True, False}  # openers and closers
    assert tune.reframe(texts, 0.0, found, random.Random(1)) == texts


def test_the_shipped_framings_are_neutral_and_keep_the_dev_closers_unseen():
    from chatbot.triage import tune
    from chatbot.triage.dataset import DEV_CLOSERS

    found = tune.framings()
    assert len(found["closer"]) >= 100 and len(found["opener"]) >= 40
    words = {w.strip("?!.,:;").lower() for t in found["opener"] + found["closer"] for w in t.split()}
    assert not words & {"help", "emergency", "urgent", "now", "please", "pls", "ambulance", "999", "911"}
    dev = {c.strip(" .?").lower() for c in DEV_CLOSERS}
    assert not dev & {t.strip(" .?!").lower() for t in found["closer"]}  # dev measures unseen closers


def test_a_bad_framing_line_is_named(tmp_path, monkeypatch):
    from chatbot.triage import tune

    (tmp_path / "framings.jsonl").write_text('{"kind": "closer", "text": "ok?"}\n{"kind": "middle"}\n')
    monkeypatch.setattr(dataset, "DATA", tmp_path)
    with pytest.raises(ValueError, match=r"framings\.jsonl line 2: needs a kind"):
        tune.framings()


def test_the_target_recall_must_hold_on_each_part_of_dev_not_on_average():
    # part 0 (generated): 40 emergencies all at P 0.9; part 1 (hand-written): 40 emergencies, 4 at P 0.2;
    # 40 routine messages at P 0.3 in part 1. Weighted alike, the average recall reaches 0.95 at 0.9
    # while the hand-written part is at 0.90; each part at 0.95 needs the threshold down to 0.2.
    y = np.array([0] * 80 + [2] * 40)
    p = np.zeros((120, 3))
    p[:80, 0], p[76:80, 0], p[80:, 0] = 0.9, 0.2, 0.3
    p[:, 2] = 1 - p[:, 0]
    rules = np.zeros(120, dtype=bool)
    rows = [{"template": "gen"}] * 40 + [{"template": "hand/dev_x/1"}] * 80
    rows.append({"template": "hand/dev_x/2", "lang": "es"})
    part = dataset.parts(rows)[:120]
    assert part[:40].tolist() == [0] * 40 and part[40:].tolist() == [1] * 80
    assert dataset.parts(rows)[-1] == -1  # another language: not a part
    averaged = thresholds.choose_thresholds(p, y, rules, target=0.95, rule_grid=(0.0,))
    each = thresholds.choose_thresholds(p, y, rules, target=0.95, rule_grid=(0.0,), part=part)
    assert averaged["emergency"] > 0.3 and each["emergency"] == 0.2
    flagged = thresholds.raised(p[:, 0], rules, each)
    assert thresholds.lowest_recall(flagged, y == 0, part) == 1.0
    assert thresholds.lowest_recall(thresholds.raised(p[:, 0], rules, averaged), y == 0, part) == 0.9


def test_the_neighbour_share_weighs_the_k_nearest_examples_by_similarity():
    from chatbot.triage.model import blend, neighbour_share

    sims = np.array([[0.9, 0.8, 0.1, 0.85], [0.2, 0.1, 0.9, 0.05]])
    emergency = np.array([True, False, True, False])
    got = neighbour_share(sims, emergency, k=2, sharpness=0.0)  # unweighted: a plain vote of the 2 nearest
    assert got.tolist() == [0.5, 1.0]  # row 0: 0.9 (yes) and 0.85 (no); row 1: 0.9 and 0.2 (both yes)
    sharp = neighbour_share(sims, emergency, k=2, sharpness=20.0)
    assert sharp[0] == pytest.approx(1 / (1 + np.exp(-1.0)))  # the nearer (0.9) counts e^1 times the other
    assert blend(0.2, 0.6, 0.5) == pytest.approx(0.4) and blend(0.2, 0.6, 0.0) == 0.2


def test_a_head_with_neighbours_decides_on_the_blended_score_and_explains_it(tmp_path, embedder):
    head = Head.load(HEAD_FILE)
    plain = Triage(head_path=head_with(tmp_path), embedder=embedder).assess(STROKE)
    sims = head.similarities(embedder.embed_query(STROKE))
    assert head.emergency_score(sims, 0.25) == (0.25, None)  # no blend in the file
    head.meta["neighbours"] = {"k": 10, "weight": 0.5, "sharpness": 20.0}
    head.thresholds = {**head.thresholds, "emergency": 0.9999, "rules": 0.9999}
    path = tmp_path / "knn.npz"
    head.save(path)
    r = Triage(head_path=path, embedder=embedder).assess(STROKE)
    pe = r.probabilities["emergency"]
    assert pe == pytest.approx(plain.probabilities["emergency"])
    share = (r.probability - 0.5 * pe) / 0.5
    assert 0.5 < share <= 1.0  # a stroke's nearest labelled examples are mostly emergencies
    said = " ".join(r.reasons)
    assert f"emergency score {r.probability:.2f}" in said and "among the 10 nearest labelled examples" in said
    assert "needs emergency score ≥ 1.00" in said and r.level != "emergency"


def test_rethreshold_gives_a_file_its_neighbour_blend_and_thresholds_from_dev(tmp_path, monkeypatch):
    from chatbot.triage import tune

    dev = dataset.split("dev")
    few = [r for r in dev if r["level"] == "emergency"][:30]
    few += [r for r in dev if r["level"] != "emergency"][:50]
    monkeypatch.setattr(tune, "split", lambda name: few)
    path = head_with(tmp_path, emergency=0.5)
    tune.main(["--rethreshold", "--out", str(path)])
    head = Head.load(path)
    assert head.meta["neighbours"] == tune.NEIGHBOURS
    assert head.meta["dev"]["recall"] >= thresholds.TARGET_RECALL  # thresholds chosen again, on the score
    tune.main(["--rethreshold", "--neighbours", "0", "--out", str(path)])
    assert "neighbours" not in Head.load(path).meta


def test_the_margin_rule_keeps_room_above_both_targets_not_just_the_recall():
    # 200 emergencies: 194 sure (0.8), 4 at 0.3, 2 at 0.1; 200 routine: 10 at 0.5, 10 at 0.2, the rest 0.01.
    # The recall rule stops at 0.8, exactly at recall 0.97; going down to 0.1 reaches recall 1.0 but
    # brings precision to 0.909, just above 0.90; 0.3 keeps the most room above both.
    y = np.array([0] * 200 + [2] * 200)
    p = np.zeros((400, 3))
    p[:194, 0], p[194:198, 0], p[198:200, 0] = 0.8, 0.3, 0.1
    p[200:210, 0], p[210:220, 0], p[220:, 0] = 0.5, 0.2, 0.01
    p[:, 2] = 1 - p[:, 0]
    rules = np.zeros(400, dtype=bool)
    assert thresholds.choose_thresholds(p, y, rules, target=0.97)["emergency"] == 0.8
    th = thresholds.choose_thresholds(p, y, rules, target=0.97, select="margin")
    assert (th["emergency"], th["rules"]) == (0.3, 0.0)  # of the tied 0.21-0.3, the higher; rules: the lower
    room = {
        t: thresholds.margin(thresholds.raised(p[:, 0], rules, {"emergency": t}), y == 0, None, 0.97, 0.90)
        for t in (0.8, 0.3, 0.1)
    }
    assert room[0.8] == pytest.approx(0.0, abs=1e-9)  # recall exactly at the target: no room
    assert room[0.3] == pytest.approx(0.02 / (0.97 * 0.03 / 200) ** 0.5)  # recall 0.99 limits it
    assert room[0.1] == pytest.approx((200 / 220 - 0.9) / (0.09 / 220) ** 0.5)  # precision limits it
    assert room[0.3] > room[0.1] > room[0.8]
    with pytest.raises(ValueError, match="select must be"):
        thresholds.choose_thresholds(p, y, rules, select="best")


def test_a_raised_message_a_rule_fired_on_takes_the_rules_category(tmp_path, embedder):
    # the rules threshold above the classifier's: a rule's alarm adds nothing, but it still names the kind
    r = Triage(head_path=head_with(tmp_path, emergency=0.0, rules=0.9999), embedder=embedder).assess(STROKE)
    assert (r.level, r.category, r.decided_by) == ("emergency", "stroke", "rules")
