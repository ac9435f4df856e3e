"""The answer chain: retrieve -> relevance floor -> prompt -> generate -> check citations.

`Chain.stream(question)` yields the answer as it is generated and leaves the
finished `Answer` on the stream; `Chain.answer(question)` returns it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatbot.attribution import attribute
from chatbot.citations import check_citations
from chatbot.conversation import standalone
from chatbot.engines.base import GenerationParams
from chatbot.errors import EmptyQuestionError
from chatbot.ranking import edges_first
from chatbot.safety import DISCLAIMER, INSUFFICIENT_EVIDENCE, EmergencyGate, EmergencyVerdict
from prompts import PromptVariant, build_prompt

if TYPE_CHECKING:
    from chatbot.engines.base import Engine
    from chatbot.retrieval import Filters, Passage, Retriever
    from chatbot.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Answer:
    """Everything about one answer: text, evidence, flags and provenance."""

    question: str
    text: str
    passages: list[Passage]
    cited: list[int] = field(default_factory=list)
    invalid_citations: list[int] = field(default_factory=list)
    attributed: list[int] = field(default_factory=list)
    """Citations medchat added to sentences the model left uncited (see `attribution`)."""
    unsupported: list[str] = field(default_factory=list)
    """Uncited sentences that no given passage supports."""
    abstained: bool = False
    emergency: bool = False
    emergency_category: str = ""
    query: str = ""
    """What was searched: the question, made standalone when it was a follow-up."""
    model: str = ""
    quantization: str = ""
    prompt_hash: str = ""
    variant: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    disclaimer: str = DISCLAIMER

    @property
    def uncited(self) -> bool:
        """An answer from the model that cites no given passage."""
        return not self.abstained and not self.emergency and not self.cited

    @property
    def cited_passages(self) -> list[Passage]:
        return [self.passages[n - 1] for n in self.cited]

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "sources": [{"n": n, **p.as_dict()} for n, p in enumerate(self.passages, start=1)],
            "cited": self.cited,
            "invalid_citations": self.invalid_citations,
            "attributed": self.attributed,
            "unsupported": self.unsupported,
            "abstained": self.abstained,
            "emergency": self.emergency,
            "emergency_category": self.emergency_category,
            "query": self.query,
            "uncited": self.uncited,
            "model": self.model,
            "quantization": self.quantization,
            "prompt_hash": self.prompt_hash,
            "variant": self.variant,
            "timings": self.timings,
            "disclaimer": self.disclaimer,
        }


class AnswerStream:
    """Iterate for the answer's text pieces; `.answer` holds the result afterwards."""

    def __init__(self, run: Callable[[AnswerStream], Iterator[str]]) -> None:
        self.answer: Answer | None = None
        self._pieces = run(self)

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close:
            close()


class Chain:
    """Collaborators are passed in or built lazily from settings on first use."""

    def __init__(
        self,
        settings: Settings,
        *,
        retriever: Retriever | None = None,
        engine: Engine | None = None,
        variant: PromptVariant | None = None,
    ) -> None:
        self.settings = settings
        self._gate: EmergencyGate | None = None
        self._retriever = retriever
        self._engine = engine
        self.variant = variant or PromptVariant.from_settings(settings.prompts)

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            from chatbot.retrieval import open_retriever

            self._retriever = open_retriever(self.settings)
        return self._retriever

    @property
    def gate(self) -> EmergencyGate:
        if self._gate is None:
            self._gate = EmergencyGate(self.settings.safety)
        return self._gate

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from chatbot.engines import get_engine

            self._engine = get_engine(self.settings.generation)
        return self._engine

    def answer(self, question: str, *, history: Sequence[str] = (), filters: Filters | None = None) -> Answer:
        stream = self.stream(question, history=history, filters=filters)
        for _ in stream:
            pass
        assert stream.answer is not None
        return stream.answer

    def stream(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        filters: Filters | None = None,
        params: GenerationParams | None = None,
    ) -> AnswerStream:
        """Answer `question`; `history` holds the earlier questions of the conversation, oldest first."""
        question = (question or "").strip()
        if not question:
            raise EmptyQuestionError(
                'the question is empty: type a medical question, e.g. `medchat ask "What is HbA1c?"`'
            )
        verdict = self.gate.check(question)
        if verdict is not None:  # before retrieval, before the model, before even opening the index
            return AnswerStream(lambda holder: self._emergency(question, verdict, holder))
        retriever = self.retriever  # opening the index raises before streaming starts
        return AnswerStream(lambda holder: self._run(question, history, filters, retriever, params, holder))

    def _emergency(self, question: str, verdict: EmergencyVerdict, holder: AnswerStream) -> Iterator[str]:
        holder.answer = Answer(
            question=question,
            text=verdict.message,
            passages=[],
            emergency=True,
            emergency_category=verdict.category,
            variant=self.variant.as_dict(),
        )
        yield verdict.message

    def _run(
        self,
        question: str,
        history: Sequence[str],
        filters: Filters | None,
        retriever: Retriever,
        params: GenerationParams | None,
        holder: AnswerStream,
    ) -> Iterator[str]:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        query = standalone(question, history)
        found = retriever.retrieve(query, filters=filters)
        timings["retrieve_s"] = time.perf_counter() - t0
        floor = self.settings.retrieval.min_score
        best = max((p.score for p in found if p.dense_scored), default=0.0)
        passages = [] if best < floor else [p for p in found if not p.dense_scored or p.score >= floor]
        passages = edges_first(passages)  # strongest at the start and the end of the context
        answer = Answer(
            question=question, text="", passages=passages, query=query, variant=self.variant.as_dict()
        )
        if not passages:
            answer.abstained = True
            answer.text = INSUFFICIENT_EVIDENCE
            answer.timings = {k: round(v, 4) for k, v in timings.items()}
            holder.answer = answer
            yield answer.text
            return

        prompt = build_prompt(query, passages, self.variant)
        engine = self.engine
        answer.model, answer.quantization, answer.prompt_hash = engine.name, engine.quantization, prompt.hash
        params = params or GenerationParams.from_settings(self.settings.generation)
        t1 = time.perf_counter()
        pieces: list[str] = []
        first = None
        for piece in engine.stream(prompt.messages, params):
            if first is None:
                first = time.perf_counter() - t1
            pieces.append(piece)
            yield piece
        timings["first_token_s"] = first if first is not None else time.perf_counter() - t1
        timings["generate_s"] = time.perf_counter() - t1
        timings["total_s"] = time.perf_counter() - t0
        check = check_citations("".join(pieces), len(passages))
        if check.invalid:
            log.info("removed citations to missing passages: %s", check.invalid)
        attributed = attribute(check.text, [p.text for p in passages], self.settings.retrieval.min_support)
        final = check_citations(attributed.text, len(passages))
        answer.text, answer.cited, answer.invalid_citations = final.text, final.cited, check.invalid
        answer.attributed = [n for n in attributed.added if n not in check.cited]
        answer.unsupported = attributed.unsupported
        answer.timings = {k: round(v, 4) for k, v in timings.items()}
        holder.answer = answer
