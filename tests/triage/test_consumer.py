"""Issue #28: real consumer questions get an answer, real emergencies still get the emergency line.

The messages quoted in the issue go through the real gate (the rules, the shipped fine-tuned
classifier, its labelled examples and the evidence rule): the false alarms are answered (routine, or
graded: the answer under a banner naming what to watch for), never taken over by the emergency line;
the two true emergencies quoted beside them still are. Whatever emergency category a decision shows
must have evidence in the message itself."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from chatbot.triage import Triage
from chatbot.triage import evidence as proof

# the questions issue #28 quotes (its "..." kept), and plainer phrasings of the two it describes
FALSE_ALARMS = [
    "qvar 40mg what is it for",
    "I take Ambien every night... how long before bed am I supposed to take it",
    "What are the indications for this veterinary antibiotic powder?",
    "my vet gave us an antibiotic soluble powder for the chickens, what is it indicated for",
    "Pharmacy refused to fill stating overdose of Metformin... what is the maximum daily dosage?",
    "trisomy 7... four miscarriages... could this be maternal or paternal?",
    "vyvanse 10 what is all in this pill",
    "vitamin d 25, how to take a day",
    "lorcet 7.5 liquid whats in this",
]
TRUE_EMERGENCIES = {
    "i took 25 iron pills last night": "overdose_poisoning",
    "vomited something like coffee grounds": "severe_bleeding",
}


@pytest.fixture(scope="module")
def triage():
    return Triage().load()


def shows_evidence(triage: Triage, text: str, result) -> bool:
    """The category shown is backed by the message: the rule that fired, a red-flag pattern that
    matches, or a labelled emergency of that category above the floor and the category's words."""
    ev = result.evidence
    if not result.category:
        return ev.source == ""
    if ev.category != result.category:
        return False
    if ev.source == "rule":
        return triage.gate.classify(text) == result.category and all(w in text.lower() for w in ev.words)
    if ev.source == "pattern":
        return proof.from_red_flags(text).category == result.category
    floor = float(triage.head.meta.get("evidence_floor", proof.FLOOR))
    return ev.source == "nearest" and ev.similarity >= floor and bool(proof.terms(result.category, text))


@pytest.mark.parametrize("message", FALSE_ALARMS)
def test_a_quoted_consumer_question_gets_its_answer_never_the_emergency_line(triage, message):
    r = triage.assess(message)
    assert not r.emergency, (message, r.probability, r.reasons)
    assert r.level in ("routine", "urgent")
    if r.level == "urgent":  # only ever as a graded answer: a guess never hides the answer
        assert r.graded, r.reasons
        header = triage.header(r)
        assert "Watch for" in header and "the answer below" in header
    assert shows_evidence(triage, message, r), (r.category, r.evidence)
    assert triage.emergency_message(r.category) not in triage.header(r)


@pytest.mark.parametrize(("message", "category"), TRUE_EMERGENCIES.items())
def test_the_quoted_true_emergencies_still_get_the_emergency_line(triage, message, category):
    r = triage.assess(message)
    assert (r.level, r.category) == ("emergency", category), r.reasons
    assert shows_evidence(triage, message, r), r.evidence
    assert r.evidence.source in ("rule", "pattern", "nearest")
    assert "Call 112" in triage.emergency_message(r.category)


def test_a_category_with_no_word_in_the_message_is_never_shown():
    """Meningitis examples at a high similarity name nothing for a message without meningitis's words;
    with one of its words, they name it."""
    import numpy as np

    examples = ["stiff neck and a purple rash that does not fade", "my chest feels crushed"]
    levels = np.array(["emergency", "emergency"])
    cats = ["meningitis", "cardiac_chest_pain"]
    sims = np.array([0.9, 0.2])
    none = proof.from_neighbours(sims, "qvar 40mg what is it for", examples, levels, cats, floor=0.45)
    assert none == proof.NONE and "no category shown" in none.describe()
    found = proof.from_neighbours(sims, "he has a rash and a fever", examples, levels, cats, floor=0.45)
    assert (found.category, found.source, found.words) == ("meningitis", "nearest", ("rash",))
    below = proof.from_neighbours(sims, "he has a rash", examples, levels, cats, floor=0.95)
    assert below == proof.NONE  # under the floor: the example is not evidence
    crushed = proof.from_neighbours(sims, "crushing chest", examples, levels, cats, floor=0.45)
    assert crushed == proof.NONE  # the chest example is under the floor, meningitis has no word here


def test_the_file_command_writes_one_decision_per_line_and_names_a_bad_line(tmp_path):
    from chatbot.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"text": "lorcet 7.5 liquid whats in this"})
        + "\nnot json\n"
        + json.dumps({"text": "i took 25 iron pills last night"})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(main, ["triage", "--file", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "line 2" in res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 3]
    assert rows[0]["level"] != "emergency"
    assert (rows[1]["level"], rows[1]["category"]) == ("emergency", "overdose_poisoning")
    assert rows[1]["evidence"]["source"] == "rule"
    assert all(r["why"] for r in rows)


def test_the_query_band_keeps_every_dev_emergency_and_grades_short_guesses():
    """`tune.query_band`: a short message that names no one, raised by the classifier alone, needs the
    band's threshold, set under the lowest such dev emergency; the longest length wins a tie."""
    import numpy as np

    from chatbot.triage.tune import query_band

    dev = [
        {"text": "vomited something like coffee grounds"},  # short, no one: an emergency
        {"text": "lorcet 7.5 liquid whats in this"},  # short, no one: a false alarm
        {"text": "my son took 20 of my pills"},  # names someone: not in the band
        {"text": "what is in this pill"},  # rule-raised in this example: not in the band
    ]
    pe = np.array([0.9, 0.6, 0.5, 0.3])
    fired = np.array([False, False, False, True])
    flagged = np.array([True, True, True, True])
    emergency = np.array([True, False, True, False])
    part = np.array([1, 2, 1, 2])
    words, threshold, spared = query_band(dev, pe, fired, {"rules": 0.1}, flagged, emergency, part)
    assert threshold == 0.9 and words == 30
    assert spared.tolist() == [False, True, False, False]


# a long story whose only alarm is a dated past event (consumer dev), and stories where it is now
PAST_STORY = (
    "synthroid - Since my gran collapsed at home last winter she lives with us. She's fine now and on "
    "synthroid 112 mcg. Can she have a glass of sherry at Christmas with it? Thanks for any advice you "
    "can give us."
)
NOW_STORIES = [
    "My dad had a stroke in 2019 and has been well since then. Right now his face is drooping on one side, "
    "his speech is slurred and he can't lift his arm. What should I do?",
    "My mum collapsed last winter and was fine after. She has collapsed again and is not breathing "
    "properly, she won't wake up and her lips look blue, please help me with what to do.",
]


def test_a_long_story_whose_alarm_is_a_dated_past_event_is_answered_under_a_warning(triage):
    whole = triage._decide(PAST_STORY, None)
    assert whole.level == "emergency"  # the message as a whole still scores as one
    result = triage.assess(PAST_STORY)
    assert result.level == "urgent" and result.graded and not result.emergency
    assert any("about the past" in r and "last winter" in r for r in result.reasons), result.reasons


@pytest.mark.parametrize("text", NOW_STORIES)
def test_a_past_event_beside_one_happening_now_keeps_the_emergency_line(triage, text):
    assert triage.assess(text).level == "emergency"
