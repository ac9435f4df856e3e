"""Triage: real decisions of the rules + classifier on messages written here (none is in the data),
with the real MiniLM encoder and the committed head; the classifier file's failure modes; the chain,
the JSON and the `medchat triage` command."""

from __future__ import annotations

import statistics
import time

import pytest
from click.testing import CliRunner

from chatbot.triage import DEFAULT_HEAD, HEAD_FILE, TUNED_FILE, Head, Triage, TriageModelError


@pytest.fixture(scope="module")
def triage():
    from ingestion.embedding import SentenceTransformerEmbedder

    return Triage(embedder=SentenceTransformerEmbedder()).load()


def test_a_rule_decides_and_names_what_it_matched(triage):
    r = triage.assess("my dad's face has dropped on one side and he can't lift his arm")
    assert (r.level, r.category, r.decided_by) == ("emergency", "stroke", "rules")
    assert "rule 'stroke' fired" in r.reasons[0]


@pytest.mark.parametrize(
    "message",
    [
        # no keyword the rules know: found by the classifier
        "my husband suddenly got a ripping pain between his shoulder blades, "
        "it goes right through to his chest",
        "grandma has a urine infection and today she doesn't know where she is and she's shaking with cold",
        "my toddler has had the runs and been sick all day, no wet nappy since this morning "
        "and she's really floppy",
        "my 12 year old woke up with awful pain in one testicle and keeps being sick",
    ],
)
def test_the_classifier_catches_emergencies_the_rules_miss(triage, message):
    assert triage.gate.classify(message) is None  # the rules alone let it pass
    r = triage.assess(message)
    assert r.level == "emergency" and r.decided_by == "classifier"
    assert r.probability >= triage.head.thresholds["emergency"]
    assert r.category  # the nearest labelled emergencies name one
    assert any("nearest labelled examples" in reason for reason in r.reasons)


@pytest.mark.parametrize(
    "closer",
    [". any home remedies?", "?? is that normal", ". what could it be?", ". thx in advance x"],
)
@pytest.mark.parametrize(
    "message",
    [
        # caught by a rule, but a rule's alarm needs the classifier's backing (the "rules" threshold):
        # trained without neutral framings, "any home remedies?" took the first to P(emergency) 0.0005
        "my 4 year old has had three seizures one after the other and hasn't woken up in between",
        # the classifier's own
        "my toddler has had the runs and been sick all day, no wet nappy since this morning "
        "and she's really floppy",
    ],
)
def test_how_a_message_is_framed_does_not_hide_an_emergency(triage, message, closer):
    r = triage.assess(message + closer)
    assert r.level == "emergency", r.reasons
    assert r.probability >= min(triage.head.thresholds["emergency"], triage.head.thresholds["rules"])


def test_a_rule_alarm_the_classifier_does_not_back_is_overruled_and_says_so(triage):
    message = "I overdosed on Netflix this weekend, how do I fix my sleep schedule?"
    assert triage.gate.classify(message) is not None  # the rules alone would call an ambulance
    r = triage.assess(message)
    assert r.level == "routine"
    assert any("a rule's alarm needs emergency score" in reason for reason in r.reasons)


@pytest.mark.parametrize(
    "message",
    [
        "What are the warning signs of a stroke?",
        "How is asthma treated in children?",
        "I had a heart attack in 2015 and I'm fine now, can I take ibuprofen?",
        "what is a normal HbA1c for someone with type 2 diabetes",
        "asthma inhalers",  # a search, not a situation: needs someone in it to be an alarm
    ],
)
def test_questions_about_a_condition_and_past_events_are_routine(triage, message):
    assert triage.assess(message).level == "routine"


def test_an_urgent_message_is_urgent_not_an_emergency(triage):
    r = triage.assess("I've had burning when I pee and I'm going every half hour since yesterday, no fever")
    assert r.level == "urgent"
    assert "urgent rather than routine" in r.reasons[0]


@pytest.mark.parametrize("search", ["warfarin INR target", "INR 4.5", "nosebleed"])
def test_a_short_search_that_names_no_one_is_routine_not_urgent(triage, search):
    # the default classifier gave "warfarin INR target" an urgent share of 0.27 (threshold 0.26): the
    # answer to a search was headed "see a doctor today"
    r = triage.assess(search)
    assert r.level == "routine", r.reasons
    share = r.probabilities["urgent"] / (r.probabilities["urgent"] + r.probabilities["routine"])
    if share >= triage.head.thresholds["urgent"]:
        assert any("the message names no one and nothing happening now" in reason for reason in r.reasons)


def test_the_head_costs_well_under_20_ms_beyond_the_embedding(triage):
    text = "my mum is 84 and since this morning she is confused and shivering, she has a water infection"
    vector = triage.encoder.embed_query(text)
    times = []
    for _ in range(15):
        started = time.perf_counter()
        triage.assess(text, vector)
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.020


def test_the_head_file_is_small_and_names_its_encoder():
    from ingestion.embedding import MINILM_ID

    assert HEAD_FILE.stat().st_size < 2_000_000
    head = Head.load(HEAD_FILE)
    assert head.encoder == MINILM_ID and head.dim == 384
    assert 0 < head.thresholds["emergency"] < 1


def test_the_default_classifier_is_the_tuned_one_small_with_its_adapters():
    from chatbot.triage.tuned import SUFFIX
    from ingestion.embedding import MINILM_ID

    assert DEFAULT_HEAD == TUNED_FILE
    # adapters in float16 (0.7 MB), the head, and ~7,000 labelled examples as int8 vectors (2.7 MB):
    # far from an encoder's 90 MB
    assert TUNED_FILE.stat().st_size < 3_500_000
    head = Head.load(TUNED_FILE)
    assert head.encoder.startswith(MINILM_ID + SUFFIX) and head.meta["base_encoder"] == MINILM_ID
    assert head.adapter and all(a.dtype.name == "float16" for a, _ in head.adapter.values())
    assert 0 < head.thresholds["emergency"] < 1


def test_a_message_costs_one_tuned_encoder_pass_and_nothing_from_retrieval(triage, monkeypatch):
    """The cost beyond the chain's own embedding is one pass of the tuned encoder (~18 ms on 2 cores:
    `bench/bench_safety.py` measures it; a timed assertion here would only measure the machine)."""
    text = "my mum is 84 and since this morning she is confused and shivering, she has a water infection"
    triage.assess(text)  # loads the tuned encoder
    passes = {"tuned": 0, "retrieval": 0}
    tuned_embed, plain_embed = triage.encoder.embed_query, triage.embedder.embed_query

    def counted(which, embed):
        def wrapper(t):
            passes[which] += 1
            return embed(t)

        return wrapper

    monkeypatch.setattr(triage.encoder, "embed_query", counted("tuned", tuned_embed))
    monkeypatch.setattr(triage.embedder, "embed_query", counted("retrieval", plain_embed))
    result = triage.assess(text)
    assert passes == {"tuned": 1, "retrieval": 0}
    assert result.level in ("emergency", "urgent") and result.seconds > 0


def test_a_missing_classifier_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "head.npz"
    with pytest.raises(TriageModelError, match=r"is missing: .*python -m chatbot\.triage\.train"):
        Triage(head_path=missing).assess("my chest hurts")


def test_a_file_that_is_no_head_is_a_clear_error(tmp_path):
    junk = tmp_path / "head.npz"
    junk.write_bytes(b"not a numpy archive")
    with pytest.raises(TriageModelError, match="is not a medchat triage head"):
        Head.load(junk)


def test_a_head_from_another_encoder_is_refused(tmp_path, triage):
    head = Head.load(HEAD_FILE)
    head.encoder = "sentence-transformers/all-mpnet-base-v2"
    other = tmp_path / "other.npz"
    head.save(other)
    with pytest.raises(TriageModelError, match=r"all-mpnet-base-v2.*all-MiniLM-L6-v2"):
        Triage(head_path=other, embedder=triage.embedder).load()


@pytest.mark.parametrize(
    "message, language",
    [
        ("mi hija tiene fiebre y no quiere comer desde ayer", "Spanish"),
        ("quelle est la dose normale de paracétamol pour un adulte", "French"),
        ("у моего отца болит грудь", "Cyrillic script"),
    ],
)
def test_non_english_messages_always_get_the_emergency_line(triage, message, language):
    r = triage.assess(message)
    assert r.language == language
    # an emergency's own message leads with the number; anything else is headed by the line
    shown = triage.emergency_message(r.category) if r.emergency else triage.header(r)
    assert "call 112 or 911" in shown.lower()


def test_english_is_not_taken_for_another_language(triage):
    for text in (
        "my daughter has had a fever since yesterday",
        "What is (are) Chagas disease ?",
        "asthma inhaler",
    ):
        assert triage.assess(text).language is None


def test_the_chain_answers_an_emergency_from_the_classifier_without_retrieval(settings):
    from chatbot.chain import Chain

    chain = Chain(settings)  # no index: an emergency must not need one
    answer = chain.answer(
        "my husband suddenly got a ripping pain between his shoulder blades, it goes right "
        "through to his chest"
    )
    data = answer.as_dict()
    assert data["emergency"] is True
    assert data["triage"]["level"] == "emergency" and data["triage"]["reasons"]
    assert 0 <= data["triage"]["probability"] <= 1
    assert answer.text.startswith("This may be an emergency. Call 112 or 911")
    assert not answer.passages


class _NoPassages:
    def __init__(self, embedder):
        self.embedder = embedder

    def retrieve(self, question, k=None, filters=None):
        self.embedder.embed_query(question)
        return []


def test_an_urgent_answer_is_headed_by_the_advice_and_the_query_is_embedded_once(settings):
    from chatbot.chain import Chain
    from chatbot.engines.fake import FakeEngine
    from chatbot.safety.wording import INSUFFICIENT_EVIDENCE

    chain = Chain(settings, engine=FakeEngine())
    calls = []
    inner = chain.embedder.inner.embed_documents
    chain.embedder.inner.embed_documents = lambda texts: calls.append(list(texts)) or inner(texts)
    chain._retriever = _NoPassages(chain.embedder)
    message = "I've had burning when I pee and I'm going every half hour since yesterday, no fever"
    answer = chain.answer(message)
    assert answer.triage["level"] == "urgent"
    assert answer.text.startswith("This sounds like something a doctor should see today")
    assert answer.text.endswith(INSUFFICIENT_EVIDENCE)
    assert calls == [[message]]  # triage and retrieval shared one encoder pass
    from chatbot.labelling.store.prefs import ResponseIn

    stored = ResponseIn.from_answer(answer, variant="v", variant_config={}, generation={}, k=None)
    assert stored.answer["triage"]["level"] == "urgent"  # what a Compare response keeps


def test_medchat_triage_prints_the_decision_and_why():
    from chatbot.cli import main

    runner = CliRunner()
    out = runner.invoke(main, ["triage", "my son swallowed a button battery from the remote"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("EMERGENCY: overdose_poisoning")
    assert "rule 'overdose_poisoning' fired" in out.output
    out = runner.invoke(main, ["triage", "--json", "What are the warning signs of a stroke?"])
    assert out.exit_code == 0
    assert '"level": "routine"' in out.output and '"nearest": [' in out.output
    empty = runner.invoke(main, ["triage", "  "])
    assert empty.exit_code == 1 and "the message is empty" in empty.output


# -- a head on a fine-tuned encoder (low-rank adapters merged at load, chatbot/triage/tuned.py) --


def _adapted_head(tmp_path, a_shape=(1, 1536), base=None):
    import numpy as np

    from chatbot.triage.tuned import adapter_id
    from ingestion.embedding import MINILM_ID

    head = Head.load(HEAD_FILE)
    rng = np.random.default_rng(0)  # random: a constant delta would vanish in the LayerNorm
    a = rng.normal(0, 0.1, a_shape).astype(np.float16)
    b = rng.normal(0, 0.1, (384, 1)).astype(np.float16)
    head.adapter = {"encoder.layer.5.output.dense": (a, b)}
    head.encoder = adapter_id(MINILM_ID, "test")
    head.meta["base_encoder"] = base or MINILM_ID
    path = tmp_path / "tuned.npz"
    head.save(path)
    return path


def test_a_head_with_adapters_reads_vectors_from_its_own_merged_encoder(tmp_path, triage):
    import numpy as np

    path = _adapted_head(tmp_path)
    loaded = Head.load(path)
    assert list(loaded.adapter) == ["encoder.layer.5.output.dense"]
    tuned = Triage(head_path=path, embedder=triage.embedder).load()
    text = "my dad has crushing chest pain and is sweating"
    plain = np.asarray(triage.embedder.embed_query(text))
    adapted = np.asarray(tuned.encoder.embed_query(text))
    assert tuned.encoder is not triage.embedder and tuned.encoder.id.endswith("+triage-lora-test")
    assert 0.5 < float(plain @ adapted) < 0.9999  # the adapters changed the vector
    # the retrieval embedder is untouched by the merge
    assert np.allclose(plain, np.asarray(triage.embedder.embed_query(text)))
    assert tuned.assess(text).level == "emergency"


def test_chains_share_one_tuned_encoder_for_the_same_file(tmp_path, triage):
    """Chat and each Compare variant build their own Triage; before, each loaded its own merged MiniLM
    (`medchat -v serve` logged "loading embedder" five times: retrieval, then triage once per chain)."""
    path = _adapted_head(tmp_path)
    first = Triage(head_path=path, embedder=triage.embedder).load()
    second = Triage(head_path=path, embedder=triage.embedder).load()
    assert first.encoder is second.encoder
    assert Triage(embedder=triage.embedder).load().encoder is triage.encoder  # the default file too


def test_adapters_that_do_not_fit_the_encoder_are_a_clear_error(tmp_path, triage):
    path = _adapted_head(tmp_path, a_shape=(1, 100))
    fix = r"adapters do not fit the bundled encoder.*chatbot\.triage\.train --encoder tuned"
    with pytest.raises(TriageModelError, match=fix):
        Triage(head_path=path, embedder=triage.embedder).load()


def test_adapters_trained_on_another_encoder_are_refused(tmp_path, triage):
    path = _adapted_head(tmp_path, base="sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(TriageModelError, match=r"trained on sentence-transformers/all-mpnet-base-v2"):
        Triage(head_path=path, embedder=triage.embedder).load()
