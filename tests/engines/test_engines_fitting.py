"""The chain fits its prompt to the engine's context window by dropping the lowest-ranked passages."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chatbot.chain import Chain
from chatbot.engines.base import ChatMessage
from chatbot.engines.fake import FakeEngine
from chatbot.errors import PromptTooLongError
from chatbot.ranking import edges_first
from chatbot.retrieval import open_retriever
from prompts import build_prompt

QUESTION = "How is asthma treated?"


class CountingFake(FakeEngine):
    """The fake engine with a context window, counting words as tokens."""

    def __init__(self, n_ctx: int) -> None:
        super().__init__()
        self.n_ctx = n_ctx

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content.split()) for m in messages)


def _ranked(edges: list) -> list:
    """Undo `edges_first`: best-first order again."""
    front, back = edges[: (len(edges) + 1) // 2], edges[(len(edges) + 1) // 2 :][::-1]
    return [p for pair in zip(front, [*back, None], strict=False) for p in pair if p is not None]


def test_chain_keeps_the_best_passages_that_fit(few_index, settings, embedder):
    retriever = open_retriever(settings, embedder)
    full = Chain(settings, retriever=retriever, engine=CountingFake(1_000_000)).answer(QUESTION)
    ranked = _ranked(full.passages)
    assert edges_first(ranked) == full.passages and len(ranked) >= 3

    room = settings.generation.max_new_tokens
    variant = Chain(settings, retriever=retriever).variant
    need_two = CountingFake(0).prompt_tokens(
        build_prompt(QUESTION, edges_first(ranked[:2]), variant).messages
    )
    engine = CountingFake(need_two + room)
    answer = Chain(settings, retriever=retriever, engine=engine).answer(QUESTION)
    assert [p.id for p in answer.passages] == [p.id for p in ranked[:2]]
    user = engine.calls[-1][-1].content
    assert QUESTION in user and "[2] " in user and "[3] " not in user
    assert engine.prompt_tokens(engine.calls[-1]) <= engine.n_ctx - room


def test_chain_never_cuts_the_question(few_index, settings, embedder):
    retriever = open_retriever(settings, embedder)
    engine = CountingFake(settings.generation.max_new_tokens + 10)
    with pytest.raises(PromptTooLongError, match="MEDCHAT_GENERATION__N_CTX"):
        Chain(settings, retriever=retriever, engine=engine).answer(QUESTION)
    assert engine.calls == []
