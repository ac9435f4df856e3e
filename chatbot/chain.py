"""The answer chain: gate -> rewrite -> retrieve -> floor -> order -> prompt -> generate -> check.

`Chain.stream(question)` yields the answer as it is generated and leaves the
finished `Answer` on the stream; `Chain.answer(question)` returns it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from chatbot.attribution import attribute, content_words, remove_invented_numbers
from chatbot.citations import check_citations
from chatbot.conversation import standalone
from chatbot.engines.base import GenerationParams, fit_passages
from chatbot.errors import EmptyQuestionError
from chatbot.limits import check_question
from chatbot.ranking import edges_first, mmr
from chatbot.retrieval import RetrievalParams
from chatbot.safety.emergency import EmergencyGate
from chatbot.safety.wording import DISCLAIMER, INSUFFICIENT_EVIDENCE
from chatbot.textnorm import normalise
from prompts import BuiltPrompt, PromptVariant, build_prompt

if TYPE_CHECKING:
    from chatbot.engines.base import Engine
    from chatbot.retrieval import Filters, Passage, Retriever
    from chatbot.settings import Settings
    from chatbot.triage import Triage

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
    removed_numbers: list[str] = field(default_factory=list)
    """Phone numbers the model wrote that no passage gives, replaced in `text` by a note."""
    abstained: bool = False
    emergency: bool = False
    emergency_category: str = ""
    triage: dict[str, Any] = field(default_factory=dict)
    """The triage decision: level (emergency, urgent, routine), category, probability, reasons."""
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
            "removed_numbers": self.removed_numbers,
            "abstained": self.abstained,
            "emergency": self.emergency,
            "emergency_category": self.emergency_category,
            "triage": self.triage,
            "query": self.query,
            "uncited": self.uncited,
            "model": self.model,
            "quantization": self.quantization,
            "prompt_hash": self.prompt_hash,
            "variant": self.variant,
            "timings": self.timings,
            "disclaimer": self.disclaimer,
        }


class RememberLast:
    """An embedder that remembers its last query vector: triage embeds the question before
    retrieval does, and retrieval then gets the same vector without a second encoder pass."""

    def __init__(self, embedder: Any) -> None:
        self.inner = embedder
        self.id = embedder.id
        self.dim = embedder.dim
        self._last: tuple[str, list[float]] | None = None

    def embed_documents(self, texts: Sequence[str]) -> Any:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        last = self._last  # one read: another thread may replace it meanwhile
        if last is not None and last[0] == text:
            return last[1]
        vector = self.inner.embed_query(text)
        self._last = (text, vector)
        return vector


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


@dataclass
class Turn:
    """The state one question carries through the steps of the chain."""

    question: str
    history: Sequence[str] = ()
    retrieval: RetrievalParams | None = None
    params: GenerationParams | None = None
    answer: Answer | None = None
    prompt: BuiltPrompt | None = None
    pieces: list[str] = field(default_factory=list)
    header: str = ""
    """Advice shown above an answer that is still given (urgent level, or not English)."""
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Answered without the model (emergency or abstention)."""
        return self.answer is not None and (self.answer.emergency or self.answer.abstained)

    def finish(self) -> Answer:
        assert self.answer is not None
        if self.header and not self.answer.emergency and not self.answer.text.startswith(self.header):
            self.answer.text = f"{self.header}\n\n{self.answer.text}"
        self.timings["total_s"] = time.perf_counter() - self.started
        self.answer.timings = {k: round(v, 4) for k, v in self.timings.items()}
        return self.answer


class Chain:
    """Collaborators are passed in or built lazily from settings on first use.

    The steps (gate, rewrite, retrieve, floor, order, prompt, generate, check)
    are methods over a `Turn`; `stream()` runs them in order and streams the
    generation, `as_runnable()` composes the same methods as LangChain runnables.
    """

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
        self._triage: Triage | None = None
        self._embedder: RememberLast | None = None
        self._retriever = retriever
        self._engine = engine
        self.variant = variant or PromptVariant.from_settings(settings.prompts)

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            from chatbot.retrieval import open_retriever

            self._retriever = open_retriever(self.settings, embedder=self.embedder)
        return self._retriever

    @property
    def embedder(self) -> RememberLast:
        """The query encoder, shared by triage and retrieval so that a question is embedded once."""
        if self._embedder is None:
            from ingestion.embedding import get_embedder

            self._embedder = RememberLast(get_embedder(self.settings))
        return self._embedder

    @property
    def triage(self) -> Triage:
        """Rules and classifier together. The default classifier (`tuned.npz`) reads the message
        through its own fine-tuned encoder, a second pass of ~18 ms; a head trained on the frozen
        encoder (`head.npz`) reuses the query vector when retrieval uses that encoder."""
        if self._triage is None:
            from chatbot.triage import Triage
            from ingestion.embedding import MINILM_ID, embedder_id

            same = embedder_id(self.settings.embedding.model) == MINILM_ID
            embedder = self.embedder if same else None
            self._triage = Triage(self.settings.safety, embedder=embedder, gate=self.gate)
        return self._triage

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

    # -- entry points -----------------------------------------------------------

    def answer(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        filters: Filters | None = None,
        params: GenerationParams | None = None,
        retrieval: RetrievalParams | None = None,
    ) -> Answer:
        """`stream()` run to the end: the finished answer (the same per-request parameters)."""
        stream = self.stream(question, history=history, filters=filters, params=params, retrieval=retrieval)
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
        retrieval: RetrievalParams | None = None,
    ) -> AnswerStream:
        """Answer `question`; `history` holds the earlier questions of the conversation, oldest first.

        Per request, `retrieval` sets k and filters (`filters` alone is a shorthand that keeps the
        settings' k) and `params` the generation; left out, both come from the settings."""
        turn = self._start(question, history, self.retrieval_params(retrieval, filters), params)
        self.gate_step(turn)  # before retrieval, before the model, before even opening the index
        if not turn.done:
            _ = self.retriever  # a missing index raises here, before streaming starts
        return AnswerStream(lambda holder: self._run(turn, holder))

    def retrieval_params(
        self, retrieval: RetrievalParams | None = None, filters: Filters | None = None
    ) -> RetrievalParams:
        """The request's retrieval parameters: those given, else the settings', with `filters` if given."""
        base = retrieval or RetrievalParams.from_settings(self.settings.retrieval)
        return base if filters is None else replace(base, filters=filters)

    def _start(
        self,
        question: str,
        history: Sequence[str],
        retrieval: RetrievalParams | None,
        params: GenerationParams | None,
    ) -> Turn:
        limits = self.settings.limits
        check_question(question or "", limits)  # before any work: a 10 MB "question" costs nothing
        question = normalise(question or "").strip()  # what the gate, retrieval and stores all see
        if not question:
            raise EmptyQuestionError(
                'the question is empty: type a medical question, e.g. `medchat ask "What is HbA1c?"`'
            )
        recent = list(history)[-limits.history_turns :] if limits.history_turns else []
        earlier = tuple(
            normalise(h) for h in recent if isinstance(h, str) and len(h) <= limits.question_chars
        )
        return Turn(question, earlier, retrieval or self.retrieval_params(), params)

    def _run(self, turn: Turn, holder: AnswerStream) -> Iterator[str]:
        for step in (
            self.rewrite_step,
            self.retrieve_step,
            self.floor_step,
            self.order_step,
            self.prompt_step,
        ):
            if turn.done:
                break
            step(turn)
        if turn.done:
            holder.answer = turn.finish()
            yield holder.answer.text
            return
        if turn.header:
            yield turn.header + "\n\n"
        yield from self.generate_step(turn)
        self.check_step(turn)
        holder.answer = turn.finish()

    def as_runnable(self) -> Any:
        """The chain as LangChain runnables, one named step each, for composition and tracing.

        Input: `{"question": str, "history": [str], "filters": {...}}`; output: `Answer`.
        """
        from langchain_core.runnables import RunnableLambda

        def start(inputs: dict[str, Any]) -> Turn:
            return self._start(
                inputs.get("question", ""),
                inputs.get("history", ()),
                self.retrieval_params(None, inputs.get("filters")),
                None,
            )

        def step(fn: Callable[[Turn], None], name: str) -> Any:
            def run(turn: Turn) -> Turn:
                if not turn.done:
                    fn(turn)
                return turn

            return RunnableLambda(run, name=name)

        def generate(turn: Turn) -> None:
            for _ in self.generate_step(turn):
                pass

        return (
            RunnableLambda(start, name="start")
            | step(self.gate_step, "gate")
            | step(self.rewrite_step, "rewrite")
            | step(self.retrieve_step, "retrieve")
            | step(self.floor_step, "floor")
            | step(self.order_step, "order")
            | step(self.prompt_step, "prompt")
            | step(generate, "generate")
            | step(self.check_step, "check")
            | RunnableLambda(lambda turn: turn.finish(), name="answer")
        )

    # -- the steps ----------------------------------------------------------------

    def gate_step(self, turn: Turn) -> None:
        """Triage: emergencies are answered at once, with no retrieval and no model; urgent and
        non-English messages get their advice above the answer."""
        turn.answer = Answer(question=turn.question, text="", passages=[], variant=self.variant.as_dict())
        result = self.triage.assess(turn.question)
        turn.timings["triage_s"] = result.seconds
        turn.answer.triage = result.as_dict()
        if result.emergency:
            turn.answer.text = self.triage.emergency_message(result.category)
            turn.answer.emergency = True
            turn.answer.emergency_category = result.category
        else:
            turn.header = self.triage.header(result)

    def rewrite_step(self, turn: Turn) -> None:
        """A follow-up ("and for children?") becomes a standalone query."""
        assert turn.answer is not None
        turn.answer.query = standalone(turn.question, turn.history)

    def retrieve_step(self, turn: Turn) -> None:
        assert turn.answer is not None
        t = time.perf_counter()
        wanted = turn.retrieval or self.retrieval_params()
        k = wanted.k * 2 if self.settings.retrieval.mmr else wanted.k
        turn.answer.passages = self.retriever.retrieve(turn.answer.query, k=k, filters=wanted.filters)
        turn.timings["retrieve_s"] = time.perf_counter() - t

    def floor_step(self, turn: Turn) -> None:
        """Too little evidence: the one named abstention, and the model is not called."""
        assert turn.answer is not None
        floor = self.settings.retrieval.min_score
        found = turn.answer.passages
        best = max((p.score for p in found if p.dense_scored), default=0.0)
        kept = [] if best < floor else [p for p in found if not p.dense_scored or p.score >= floor]
        turn.answer.passages = kept
        if not kept:
            turn.answer.abstained = True
            turn.answer.text = INSUFFICIENT_EVIDENCE

    def order_step(self, turn: Turn) -> None:
        """Optional diversity, then the strongest passages at both ends of the context."""
        assert turn.answer is not None
        r = self.settings.retrieval
        k = (turn.retrieval or self.retrieval_params()).k
        passages = turn.answer.passages
        if r.mmr and len(passages) > k:
            words = {p.id: content_words(p.text) for p in passages}

            def overlap(a: Passage, b: Passage) -> float:
                union = words[a.id] | words[b.id]
                return len(words[a.id] & words[b.id]) / len(union) if union else 0.0

            top = max(p.fused for p in passages) or 1.0
            passages = mmr(passages, [p.fused / top for p in passages], overlap, k, r.mmr_lambda)
        ranked = passages[:k]
        ranked = ranked[: self._fitting(turn, ranked)]
        turn.answer.passages = edges_first(ranked)

    def _fitting(self, turn: Turn, ranked: list[Passage]) -> int:
        """How many of the best-ranked passages fit the engine's context window beside the answer;
        the question and instructions are never cut (see `chatbot.engines.fit_passages`)."""
        assert turn.answer is not None
        query = turn.answer.query
        params = turn.params or GenerationParams.from_settings(self.settings.generation)
        n = fit_passages(
            lambda n: build_prompt(query, edges_first(ranked[:n]), self.variant).messages,
            len(ranked),
            self.engine,
            params.max_new_tokens,
        )
        if n < len(ranked):
            log.info("context window: kept the %d best of %d passages", n, len(ranked))
        return n

    def prompt_step(self, turn: Turn) -> None:
        assert turn.answer is not None
        turn.prompt = build_prompt(turn.answer.query, turn.answer.passages, self.variant)
        turn.answer.prompt_hash = turn.prompt.hash

    def generate_step(self, turn: Turn) -> Iterator[str]:
        assert turn.answer is not None and turn.prompt is not None
        engine = self.engine
        turn.answer.model, turn.answer.quantization = engine.name, engine.quantization
        params = turn.params or GenerationParams.from_settings(self.settings.generation)
        t = time.perf_counter()
        for piece in engine.stream(turn.prompt.messages, params):
            if "first_token_s" not in turn.timings:
                turn.timings["first_token_s"] = time.perf_counter() - t
            turn.pieces.append(piece)
            yield piece
        turn.timings.setdefault("first_token_s", time.perf_counter() - t)
        turn.timings["generate_s"] = time.perf_counter() - t

    def check_step(self, turn: Turn) -> None:
        """Invalid citations removed; uncited sentences attributed or reported as unsupported."""
        answer = turn.answer
        assert answer is not None
        n = len(answer.passages)
        check = check_citations("".join(turn.pieces), n)
        if check.invalid:
            log.info("removed citations to missing passages: %s", check.invalid)
        attributed = attribute(
            check.text, [p.text for p in answer.passages], self.settings.retrieval.min_support
        )
        final = check_citations(attributed.text, n)
        answer.text, answer.cited, answer.invalid_citations = final.text, final.cited, check.invalid
        answer.attributed = [c for c in attributed.added if c not in check.cited]
        answer.unsupported = attributed.unsupported
        answer.text, answer.removed_numbers = remove_invented_numbers(
            answer.text, [p.text for p in answer.passages]
        )
        if answer.removed_numbers:
            log.warning("removed phone numbers the sources do not give: %s", answer.removed_numbers)
