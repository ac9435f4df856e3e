"""Best-of-N variants without a model file: a seeded scripted engine, a stub reward scorer, no index.

The reward model itself (trained, registered, loaded and batched) is tested in
tests/training/test_training.py::test_best_of_variant_from_a_trained_reward_model.
"""

from __future__ import annotations

import json

import pytest

from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine
from chatbot.errors import ConfigError
from chatbot.labelling.best_of import BestOf, BestOfChain, reward_model_dir
from chatbot.labelling.store.prefs import ResponseIn
from chatbot.labelling.variants import Variant, VariantRunner, parse_variants

PASSAGE = "The usual target is INR 2.5 (range 2.0-3.0) for AF and venous clots."
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
"""The seed in each reply as a word: a figure the passage lacks would be flagged by the grounding check."""


class SeededEngine(FakeEngine):
    """A different reply per seed (as sampling gives), each a sentence the passage supports plus a tag."""

    def __init__(self):
        super().__init__()
        self.params = []

    def stream(self, messages, params):
        self.calls.append(list(messages))
        self.params.append(params)
        yield f"Answer {WORDS[params.seed]}: the usual target is INR 2.5 (range 2.0-3.0) [1]."


class Routine:
    def assess(self, question):
        from chatbot.triage import TriageResult

        return TriageResult("routine")

    def header(self, result):
        return ""


class OnePassage:
    def retrieve(self, question, k=None, filters=None):
        from chatbot.retrieval import Passage

        return [Passage("w1", PASSAGE, "Warfarin", "", "/notes/warfarin.md", 0.9)]


class StubScorer:
    """Scores by the seed named in the answer: seed 2 best (neither the first nor the last)."""

    def __init__(self, by_seed):
        self.by_seed = by_seed
        self.calls = []

    def __call__(self, prompt, answers):
        self.calls.append((prompt, list(answers)))
        return [self.by_seed[WORDS.index(a.split("Answer ")[1].split(":")[0])] for a in answers]


def _chain(settings, scorer, n=4, engine=None):
    return BestOfChain(
        settings,
        retriever=OnePassage(),
        engine=engine or SeededEngine(),
        triage=Routine(),
        best_of=BestOf(n, "rm", 0.7),
        scorer=scorer,
    )


def test_the_highest_scoring_of_n_different_candidates_is_the_answer(settings):
    from chatbot.engines.base import GenerationParams

    scorer = StubScorer({5: 0.1, 6: -1.0, 7: 2.5, 8: 0.3})
    chain = _chain(settings, scorer)
    stream = chain.stream("What INR should I aim for on warfarin?", params=GenerationParams(seed=5))
    assert "4 answers" in stream.status and "reward model rm" in stream.status
    shown = [p for p in stream if p]
    answer = stream.answer
    assert answer is not None
    # one piece, the chosen answer: nothing is shown before all four are scored
    assert shown == [answer.text] and answer.text.startswith("Answer seven:")
    engine = chain.engine
    assert [p.seed for p in engine.params] == [5, 6, 7, 8]  # seeds seed .. seed+N-1
    assert {p.temperature for p in engine.params} == {0.7}
    assert len({json.dumps([m.content for m in c]) for c in engine.calls}) == 1  # one prompt for all four
    best = answer.best_of
    assert best["scores"] == [0.1, -1.0, 2.5, 0.3] and best["chosen"] == 2 and best["seeds"] == [5, 6, 7, 8]
    assert len(set(best["candidates"])) == 4 and answer.text == best["candidates"][2]
    ((prompt, scored),) = scorer.calls  # one batch of four, on what each would show
    assert scored == best["candidates"] and prompt[-1]["role"] == "user" and PASSAGE in prompt[-1]["content"]
    # checked like any answer: cited, and the grounding check ran
    assert answer.cited == [1] and answer.sentences and answer.grounding == "free"
    t = answer.timings
    assert t["best_of_added_s"] >= 0 and t["total_s"] >= t["best_of_one_s"] > 0
    assert len(best["seconds"]) == 4
    # the store keeps it with the answer
    stored = ResponseIn.from_answer(answer, variant="bo", variant_config={}, generation={}, k=1)
    assert (
        stored.answer["best_of"]["scores"] == best["scores"]
        and stored.answer["timings"]["best_of_added_s"] >= 0
    )


def test_a_plain_chain_has_no_best_of(settings):
    answer = Chain(settings, retriever=OnePassage(), engine=SeededEngine(), triage=Routine()).answer("INR?")
    assert answer.best_of == {} and "best_of" not in answer.as_dict()


def test_stopping_between_candidates_ends_without_an_answer(settings):
    scorer = StubScorer({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0})
    chain = _chain(settings, scorer)
    stream = chain.stream("What INR should I aim for on warfarin?")
    pieces = iter(stream)
    assert next(pieces) == ""  # after the first candidate
    stream.close()
    assert stream.answer is None and not scorer.calls and len(chain.engine.params) == 1


def test_an_emergency_is_answered_at_once_without_candidates(settings):
    from chatbot.triage import TriageResult

    class Emergency(Routine):
        def assess(self, question):
            return TriageResult("emergency", category="cardiac")

        def emergency_message(self, category):
            return "Call 112 now."

    scorer = StubScorer({})
    engine = SeededEngine()
    chain = BestOfChain(
        settings,
        retriever=OnePassage(),
        engine=engine,
        triage=Emergency(),
        best_of=BestOf(4, "rm"),
        scorer=scorer,
    )
    stream = chain.stream("crushing chest pain")
    assert stream.emergency and stream.status == ""
    assert "".join(stream) == "Call 112 now." and not engine.calls and not scorer.calls


def _spec(**best_of):
    return {"variants": {"base": {}, "base+bo4": {"generation": {"grounding": "free"}, "best_of": best_of}}}


@pytest.mark.parametrize(
    ("best_of", "said"),
    [
        ({"n": 1, "reward_model": "rm"}, "n must be an integer from 2 to 16"),
        ({"n": 17, "reward_model": "rm"}, "n must be an integer from 2 to 16"),
        ({"n": 4}, "reward_model must name a run"),
        ({"n": 4, "reward_model": "../x"}, "reward_model must name a run"),
        ({"n": 4, "reward_model": "rm", "temperature": 0}, "temperature must be above 0"),
        ({"n": 4, "reward_model": "rm", "k": 3}, "unknown keys ['k']"),
    ],
)
def test_a_bad_best_of_is_one_line_naming_the_variant(best_of, said):
    with pytest.raises(ConfigError) as e:
        parse_variants(_spec(**best_of), where="v.yaml")
    msg = str(e.value)
    assert msg.startswith("v.yaml: variant 'base+bo4': best_of") and said in msg and "\n" not in msg


def test_best_of_parses_and_samples_at_its_temperature():
    (_, v) = parse_variants(_spec(n=4, reward_model="rm"), where="v.yaml")
    assert v.best_of == BestOf(4, "rm", 0.7) and v.as_dict()["best_of"]["n"] == 4
    from chatbot.engines.base import GenerationParams

    assert v.params(GenerationParams(temperature=0.0)).temperature == 0.7
    spec = _spec(n=4, reward_model="rm")
    spec["variants"]["base+bo4"]["generation"]["grounding"] = "extractive"
    with pytest.raises(ConfigError, match="grounding extractive writes none"):
        parse_variants(spec, where="v.yaml")


def test_the_reward_model_must_exist_and_be_one(settings, tmp_path):
    models = tmp_path / "models"
    bo = BestOf(4, "rm")
    with pytest.raises(ConfigError, match=r"'base\+bo4': best_of reward model 'rm' is not in .*: run "
                       r"`medchat train reward --name rm` first"):  # fmt: skip
        reward_model_dir(models, bo, "base+bo4")
    (models / "rm" / "merged").mkdir(parents=True)
    (models / "rm" / "merged" / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(ConfigError, match=r"is a LlamaForCausalLM .* name a run of `medchat train reward`"):
        reward_model_dir(models, bo, "base+bo4")
    (models / "rm" / "merged" / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForSequenceClassification"]})
    )
    assert reward_model_dir(models, bo, "base+bo4") == models / "rm" / "merged"
    # the runner checks when it is built, before any question
    chain = Chain(settings, retriever=OnePassage(), engine=SeededEngine(), triage=Routine())
    variants = [
        Variant("base"),
        Variant("base+bo4", generation={"grounding": "free"}, best_of=BestOf(4, "nope")),
    ]
    with pytest.raises(ConfigError, match="'nope' is not in"):
        VariantRunner(chain, variants)


def test_register_best_of_appends_a_checked_variant_like_another(tmp_path):
    from chatbot.labelling.variants import load_variants
    from chatbot.training import TrainingError
    from chatbot.training.register import register_best_of

    path = tmp_path / "variants.yaml"
    path.write_text(
        "# kept\nvariants:\n"
        "  base: {retrieval: {k: 3}, generation: {temperature: 0.0, seed: 2, grounding: free}}\n"
        "  tuned: {generation: {grounding: checked}, model: {engine: llamacpp, path: /m/t.gguf}}\n"
        "  quotes: {generation: {grounding: extractive}}\n"
    )
    models = tmp_path / "models"
    spec = {"n": 4, "reward_model": "rm", "temperature": 0.7}
    with pytest.raises(TrainingError, match="run `medchat train reward --name rm` first"):
        register_best_of(path, "base+bo4", best_of=spec, models_dir=models, like="base")
    (models / "rm" / "merged").mkdir(parents=True)
    (models / "rm" / "merged" / "config.json").write_text(
        '{"architectures": ["LlamaForSequenceClassification"]}'
    )
    with pytest.raises(TrainingError, match="grounding extractive"):
        register_best_of(path, "q+bo4", best_of=spec, models_dir=models, like="quotes")
    register_best_of(path, "base+bo4", best_of=spec, models_dir=models, like="base")
    register_best_of(path, "tuned+bo4", best_of=spec, models_dir=models, like="tuned")
    text = path.read_text()
    assert text.startswith("# kept\n") and "added by `medchat train --register base+bo4`" in text
    found = {v.name: v for v in load_variants(path)}
    assert found["base+bo4"].best_of == BestOf(4, "rm", 0.7) and found["base+bo4"].k == 3
    assert not found["base+bo4"].model and found["base+bo4"].generation["seed"] == 2
    assert found["tuned+bo4"].model == {"engine": "llamacpp", "path": "/m/t.gguf"}  # the model comes along
