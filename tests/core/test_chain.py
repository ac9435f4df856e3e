"""The answer chain on the deterministic fake engine over a real small index."""

import re

import pytest

from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine
from chatbot.errors import EmptyQuestionError
from chatbot.retrieval import open_retriever
from chatbot.safety.wording import DISCLAIMER, INSUFFICIENT_EVIDENCE


@pytest.fixture
def chain(few_index, settings, embedder):
    """The model's own answer, checked and marked in place (`free`): these tests are about what the
    chain does with what a model writes (the default quotes the sources: test_grounded_chain.py)."""
    settings.generation.grounding = "free"
    return Chain(settings, retriever=open_retriever(settings, embedder), engine=FakeEngine())


def test_answer_cites_a_retrieved_passage(chain):
    answer = chain.answer("What blood pressure counts as hypertension?")
    assert answer.cited == [1]
    assert answer.cited_passages[0].source.endswith("hypertension.md")
    assert answer.text.endswith(("[1]", "[1]."))
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
    assert "".join(pieces).strip() == stream.answer.raw_text.strip()  # free streams the model's words
    assert stream.answer.sentences[0]["verdict"] == "supported"


def test_invalid_citations_are_removed_and_uncited_answers_flagged(chain):
    chain.engine.enqueue("Warfarin is best taken with grapefruit juice at midnight [9].")
    answer = chain.answer("warfarin monitoring")
    assert answer.invalid_citations == [9]
    assert answer.raw_text == "Warfarin is best taken with grapefruit juice at midnight [9]."
    assert answer.text == "[not in your sources] Warfarin is best taken with grapefruit juice at midnight."
    assert answer.uncited
    assert answer.unsupported == ["Warfarin is best taken with grapefruit juice at midnight."]


def test_a_phone_number_the_sources_do_not_give_is_removed_from_the_answer(chain):
    """The bundled model wrote "call 112-480-5697" for bleeding on warfarin: digits of its own making."""
    from chatbot.attribution import INVENTED_NUMBER

    chain.engine.enqueue("For heavy bleeding call 112-480-5697 or (555) 123 4567 now. Keep INR 2.0-3.0.")
    answer = chain.answer("How is the bleeding risk of warfarin monitored?")
    assert answer.removed_numbers == ["112-480-5697", "(555) 123 4567"]
    assert "5697" not in answer.text and "4567" not in answer.text
    assert answer.text.count(INVENTED_NUMBER) == 2 and "2.0-3.0" in answer.text
    assert answer.as_dict()["removed_numbers"] == answer.removed_numbers


def test_a_phone_number_from_the_sources_is_kept():
    from chatbot.attribution import remove_invented_numbers

    passages = ["Call the clinic on 020 7946 0958 the same day."]
    text, removed = remove_invented_numbers(
        "Ring 020 7946 0958 today; in 2019-2021 studies, 140/90.", passages
    )
    assert removed == [] and "020 7946 0958" in text and "2019-2021" in text


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


def test_a_follow_up_is_searched_with_the_previous_question(chain):
    answer = chain.answer("And how is it monitored?", history=["What is warfarin used for?"])
    assert answer.query == "What is warfarin used for? And how is it monitored?"
    assert answer.passages[0].source.endswith("warfarin.md")


def test_metadata_filters_limit_the_sources(chain):
    answer = chain.answer("How is high blood pressure treated?", filters={"source": {"$ne": ""}})
    assert answer.passages
    only = chain.answer("What is the INR?", filters={"title": "Migraine"})  # no such title: nothing passes
    assert only.abstained


def test_context_order_puts_the_strongest_passages_at_both_ends(chain):
    found = chain.retriever.retrieve("asthma inhalers")
    answer = chain.answer("asthma inhalers")
    assert [p.id for p in answer.passages] == [found[i].id for i in (0, 2, 3, 1)]


class _Lexical:
    """A stand-in lexical index that always ranks one chosen chunk first."""

    def __init__(self, hit):
        self.hit = hit

    def query(self, text, k):
        return [self.hit]


def test_hybrid_retrieval_fuses_a_lexical_ranking(few_index, settings, embedder):
    from chatbot.retrieval import Retriever
    from ingestion.index import Hit

    dense = open_retriever(settings, embedder)
    plain = dense.retrieve("warfarin INR", k=8)
    outsider = plain[-1]
    hit = Hit(outsider.id, outsider.text, {"source": outsider.source, "title": outsider.title}, 0.0)
    hybrid = Retriever(dense.index, embedder, 4, lexical=_Lexical(hit), lexical_weight=3.0)
    fused = hybrid.retrieve("warfarin INR")
    assert fused[0].id == outsider.id  # the heavily weighted lexical ranking wins
    assert fused[0].fused > fused[1].fused


def _max_overlap(passages):
    from itertools import combinations

    from chatbot.attribution import content_words

    pairs = combinations([content_words(p.text) for p in passages], 2)
    return max(len(a & b) / len(a | b) for a, b in pairs)


def test_mmr_prefers_passages_that_say_different_things(chain):
    question = "warfarin INR monitoring"
    plain = chain.answer(question).passages
    chain.settings.retrieval.mmr = True
    chain.settings.retrieval.mmr_lambda = 0.3
    diverse = chain.answer(question).passages
    assert len(diverse) == chain.settings.retrieval.k == len({p.id for p in diverse})
    assert {p.id for p in diverse} != {p.id for p in plain}
    assert _max_overlap(diverse) <= _max_overlap(plain)
    pool = {p.id for p in chain.retriever.retrieve(question, k=2 * chain.settings.retrieval.k)}
    assert {p.id for p in diverse} <= pool
