"""The chain's three ways of making what the user reads, on the fake engine over a real small index."""

import pytest

from chatbot.chain import Chain
from chatbot.engines.base import GenerationParams
from chatbot.engines.fake import FakeEngine
from chatbot.grounding import NOT_IN_SOURCES_MARK, SUPPORTED
from chatbot.retrieval import open_retriever
from chatbot.safety.wording import EXTRACTIVE_LEAD

QUESTION = "What INR range is the target on warfarin for atrial fibrillation?"
REPLY = (
    "The usual target is INR 2.5 (range 2.0-3.0) for AF [1]. "
    "For AF the INR range is 3.5-4.5 [1]. "
    "Warfarin is best taken with grapefruit juice."
)


@pytest.fixture
def chain(few_index, settings, embedder):
    return Chain(settings, retriever=open_retriever(settings, embedder), engine=FakeEngine())


def ask(chain, mode, reply=REPLY):
    chain.engine.enqueue(reply)
    return chain.answer(QUESTION, params=GenerationParams(grounding=mode))


def test_the_default_answer_quotes_the_sources_and_calls_no_model(chain, monkeypatch):
    from chatbot.settings import Settings

    monkeypatch.delenv("MEDCHAT_GENERATION__GROUNDING")  # the tests' own default (conftest)
    assert Settings().generation.grounding == "extractive"
    chain.settings.generation.grounding = "extractive"
    answer = chain.answer(QUESTION)
    assert answer.grounding == "extractive"
    assert chain.engine.calls == []  # no model call at all
    assert "The usual target is INR 2.5 (range 2.0-3.0) for AF and venous clots [" in answer.text
    quoted = [s for s in answer.sentences if s["claim"]]
    assert quoted and all(s["verdict"] == SUPPORTED for s in quoted)
    assert answer.cited and answer.model == "extractive"


def test_checked_answers_show_only_what_the_sources_say(chain):
    answer = ask(chain, "checked")
    first, second = answer.text.split("\n")[0], answer.text
    assert first.startswith("The usual target is INR 2.5 (range 2.0-3.0) for AF [")
    assert "3.5-4.5" not in answer.text  # the contradicted figure is never shown
    assert "Your source says otherwise: “The usual target is INR 2.5 (range 2.0-3.0)" in second
    assert answer.corrected[0]["sentence"].startswith("For AF the INR range is 3.5-4.5")
    assert answer.withheld == ["Warfarin is best taken with grapefruit juice."]
    assert "grapefruit" not in answer.text
    assert answer.raw_text == REPLY  # the model's own words are kept beside what is shown
    assert [s["verdict"] for s in answer.sentences] == ["supported", "contradicted", "not_found"]
    assert answer.as_dict()["raw_answer"] == REPLY and answer.as_dict()["withheld"] == answer.withheld


def test_a_checked_answer_with_nothing_supported_falls_back_to_the_sources_words(chain):
    answer = ask(chain, "checked", "Warfarin is a kind of vitamin. Take it with grapefruit juice.")
    assert EXTRACTIVE_LEAD.strip() in answer.text
    assert "INR" in answer.text and "vitamin. " not in answer.text
    assert len(answer.withheld) == 2


def test_free_answers_keep_everything_in_place_with_marks(chain):
    answer = ask(chain, "free")
    assert f"{NOT_IN_SOURCES_MARK} Warfarin is best taken with grapefruit juice." in answer.text
    assert "3.5-4.5" not in answer.text  # even free text never shows a contradicted sentence as true


def test_checked_streaming_shows_a_sentence_only_once_it_is_checked(chain):
    chain.engine.enqueue(REPLY)
    stream = chain.stream(QUESTION, params=GenerationParams(grounding="checked"))
    shown = "".join(stream)
    assert "3.5-4.5" not in shown and "grapefruit" not in shown
    assert stream.answer.timings["first_token_s"] >= stream.answer.timings["model_first_token_s"]


def test_a_stopped_answer_is_finished_with_what_was_written_and_marked_stopped(chain):
    chain.engine.enqueue(REPLY)
    stream = chain.stream(QUESTION, params=GenerationParams(grounding="free"))
    pieces = iter(stream)
    for _ in range(6):
        next(pieces)
    stream.close()  # what the chat's Stop does
    answer = stream.answer
    assert answer is not None and answer.stopped
    assert answer.raw_text.startswith("The usual target") and "grapefruit" not in answer.raw_text
    assert answer.passages and answer.disclaimer


def test_a_paraphrase_of_the_source_is_shown_and_its_opposite_never(chain):
    # the index's own encoder recognises a sentence that says the source's words in other words
    # (generation.grounding_meaning); it never lets a changed figure through
    reply = (
        "For AF, the usual INR target is 2.5, with a range of 2.0-3.0 [1]. "
        "For AF, the usual INR target is 3.5, with a range of 3.0-4.0 [1]."
    )
    answer = ask(chain, "checked", reply)
    verdicts = [(s["sentence"][:30], s["verdict"], s["reason"]) for s in answer.sentences]
    assert answer.sentences[0]["verdict"] == SUPPORTED, verdicts
    assert answer.sentences[1]["verdict"] != SUPPORTED, verdicts
    assert "3.0-4.0" not in answer.text
    chain.settings.generation.grounding_meaning = False
    off = ask(chain, "checked", reply)
    assert off.sentences[1]["verdict"] != SUPPORTED
