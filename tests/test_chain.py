"""The answer chain on the deterministic fake engine over a real small index."""

import re

import pytest

from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine
from chatbot.errors import EmptyQuestionError
from chatbot.retrieval import open_retriever
from chatbot.safety import DISCLAIMER, INSUFFICIENT_EVIDENCE


@pytest.fixture
def chain(few_index, settings, embedder):
    return Chain(settings, retriever=open_retriever(settings, embedder), engine=FakeEngine())


def test_answer_cites_a_retrieved_passage(chain):
    answer = chain.answer("What blood pressure counts as hypertension?")
    assert answer.cited == [1]
    assert answer.cited_passages[0].source.endswith("hypertension.md")
    assert answer.text.endswith("[1]")
    assert answer.disclaimer == DISCLAIMER
    assert not answer.abstained and not answer.uncited
    assert answer.model == "fake" and len(answer.prompt_hash) == 16
    assert set(answer.timings) >= {"retrieve_s", "generate_s", "first_token_s", "total_s"}


def test_the_prompt_holds_the_question_and_numbered_passages(chain):
    chain.answer("How is asthma treated?")
    messages = chain.engine.calls[-1]
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]  # exemplar turn
    user = messages[-1]
    assert "How is asthma treated?" in user.content
    assert "[1] " in user.content and "[4] " in user.content
    assert "[5] " not in user.content  # k = 4 by default


def test_streaming_yields_pieces_then_the_answer(chain):
    stream = chain.stream("What is migraine?")
    pieces = list(stream)
    assert len(pieces) > 1
    assert stream.answer is not None
    assert "".join(pieces).strip() == stream.answer.text


def test_invalid_citations_are_removed_and_uncited_answers_flagged(chain):
    chain.engine.enqueue("Warfarin is best taken with grapefruit juice at midnight [9].")
    answer = chain.answer("warfarin monitoring")
    assert answer.invalid_citations == [9]
    assert answer.text == "Warfarin is best taken with grapefruit juice at midnight."
    assert answer.uncited
    assert answer.unsupported == [answer.text]


def test_uncited_sentences_are_attributed_to_the_passage_that_supports_them(chain):
    first = chain.retriever.retrieve("warfarin INR target")[0]
    sentence = re.split(r"(?<=[.!?])\s", first.text.strip())[0].rstrip(".")
    chain.engine.enqueue(f"{sentence}. The full moon controls blood clotting strongly.")
    answer = chain.answer("warfarin INR target")
    assert answer.text.startswith(f"{sentence} [1].")
    assert answer.cited == [1] and answer.attributed == [1]
    assert answer.unsupported == ["The full moon controls blood clotting strongly."]


def test_weak_evidence_abstains_without_calling_the_model(chain):
    chain.settings.retrieval.min_score = 0.99
    answer = chain.answer("What is the capital of France?")
    assert answer.abstained and answer.text == INSUFFICIENT_EVIDENCE
    assert answer.passages == []
    assert chain.engine.calls == []


def test_unrelated_questions_fall_below_the_default_floor(chain):
    answer = chain.answer("Who won the football world cup in 1966?")
    assert answer.abstained


@pytest.mark.parametrize("question", ["", "   ", "\n"])
def test_empty_question_is_refused(chain, question):
    with pytest.raises(EmptyQuestionError, match="empty"):
        chain.stream(question)


def test_as_dict_carries_sources_with_ids_titles_paths_and_scores(chain):
    data = chain.answer("asthma inhaler").as_dict()
    src = data["sources"][0]
    assert {"n", "id", "title", "path", "score", "text", "section"} <= set(src)
    assert data["abstained"] is False and data["emergency"] is False
