"""The answer chain: gate -> rewrite -> retrieve -> floor -> order -> prompt -> generate -> check.

`Chain.stream(question)` yields the answer as it is generated and leaves the
finished `Answer` on the stream; `Chain.answer(question)` returns it at once.
`Chain.admit(question)` is the one way a question comes in (limits, normalisation,
triage); one admitted question can be answered several times (the Compare tab's two
variants) without being triaged again. `Chain.evidence` and `Chain.check` serve an
answer written elsewhere (a gold answer) the passages and the grounding check that a
model's answer gets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatbot.attribution import content_words, remove_invented_numbers
from chatbot.citations import check_citations
from chatbot.conversation import standalone
from chatbot.engines.base import GenerationParams, fit_passages
from chatbot.errors import EmptyQuestionError
from chatbot.grounding import (
    SUPPORTED,
    Presented,
    SentenceCheck,
    SentenceStream,
    extract,
    extractive_text,
    present,
    quoted,
    source_says_of,
    units,
)
from chatbot.limits import check_question
from chatbot.ranking import edges_first, mmr
from chatbot.retrieval import RetrievalParams
from chatbot.safety.emergency import EmergencyGate
from chatbot.safety.wording import DISCLAIMER, EXTRACTIVE_LEAD, INSUFFICIENT_EVIDENCE
from chatbot.textnorm import normalise
from prompts import BuiltPrompt, PromptVariant, build_prompt

if TYPE_CHECKING:
    from chatbot.engines.base import Engine
    from chatbot.retrieval import Filters, Passage, Retriever
    from chatbot.settings import Settings
    from chatbot.triage import Triage, TriageResult

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
    grounding: str = ""
    """How the shown text was made: `extractive`, `checked` or `free` (see `chatbot.grounding`)."""
    raw_text: str = ""
    """What the model wrote, before the grounding check; `text` is what the user is shown."""
    sentences: list[dict[str, Any]] = field(default_factory=list)
    """The grounding check's verdict on each sentence of `raw_text` (`SentenceCheck.as_dict`)."""
    withheld: list[str] = field(default_factory=list)
    """Sentences of the model's that no passage supports: kept out of `text`, listed apart."""
    corrected: list[dict[str, Any]] = field(default_factory=list)
    """Sentences a passage contradicts, each shown as what the source says instead."""
    stopped: bool = False
    """The answer was cut short (Stop, or the token limit): `text` is what was written by then."""
    best_of: dict[str, Any] = field(default_factory=dict)
    """A best-of-N variant's choice (`chatbot.labelling.best_of`): the candidates, their reward
    scores and the index chosen; empty for an answer written once."""

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
            "grounding": self.grounding,
            "raw_answer": self.raw_text,
            "sentences": self.sentences,
            "withheld": self.withheld,
            "corrected": self.corrected,
            "stopped": self.stopped,
            **({"best_of": self.best_of} if self.best_of else {}),
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
        self.emergency = False
        """Triage already answered (before any piece is read): no retrieval, no model, nothing to wait for."""
        self.status = ""
        """What to show while nothing is streamed yet, when the answer cannot stream (best of N)."""
        self._pieces = run(self)

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close:
            close()


@dataclass(frozen=True)
class Admitted:
    """A question let in by `Chain.admit`: within the limits, normalised, and triaged once."""

    question: str
    history: tuple[str, ...]
    """The earlier questions of the conversation that are read (normalised, the last few)."""
    triage: TriageResult

    @property
    def emergency(self) -> bool:
        return self.triage.emergency


@dataclass
class Turn:
    """The state one question carries through the steps of the chain."""

    question: str
    history: Sequence[str] = ()
    retrieval: RetrievalParams | None = None
    triaged: TriageResult | None = None
    """The question's triage, done once when it was admitted."""
    params: GenerationParams | None = None
    answer: Answer | None = None
    prompt: BuiltPrompt | None = None
    pieces: list[str] = field(default_factory=list)
    header: str = ""
    """Advice shown above an answer that is still given (urgent level, or not English)."""
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    stopped: bool = False
    """Generation was cut short by the caller (Stop): the answer is what was written by then."""
    quoted: list[SentenceCheck] = field(default_factory=list)
    """The passage sentences an extractive answer quotes, as verdicts."""

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
    generation.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        retriever: Retriever | None = None,
        engine: Engine | None = None,
        variant: PromptVariant | None = None,
        triage: Triage | None = None,
    ) -> None:
        self.settings = settings
        self._gate: EmergencyGate | None = None
        self._triage = triage
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
    def meaning_embedder(self) -> Any:
        """The encoder the grounding check uses for paraphrases (`Meaning`): the one retrieval already
        loaded, never one loaded for the check alone; None when turned off or not loaded."""
        if not self.settings.generation.grounding_meaning:
            return None
        if self._embedder is not None:
            return self._embedder.inner
        found = getattr(self._retriever, "embedder", None)  # a retriever given to the chain
        return getattr(found, "inner", found)

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

            self._engine = get_engine(self.settings.generation, models_dir=self.settings.models_dir)
        return self._engine

    # -- entry points -----------------------------------------------------------

    def admit(self, question: str, *, history: Sequence[str] = ()) -> Admitted:
        """Let a question in: size limits (before any work: a 10 MB "question" costs nothing), one
        normalisation for everything after, and triage, once. Raises for an empty question."""
        limits = self.settings.limits
        check_question(question or "", limits)
        question = normalise(question or "").strip()  # what the gate, retrieval and stores all see
        if not question:
            raise EmptyQuestionError(
                'the question is empty: type a medical question, e.g. `medchat ask "What is HbA1c?"`'
            )
        recent = list(history)[-limits.history_turns :] if limits.history_turns else []
        earlier = tuple(
            normalise(h) for h in recent if isinstance(h, str) and len(h) <= limits.question_chars
        )
        return Admitted(question, earlier, self.triage.assess(question))

    def answer(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        filters: Filters | None = None,
        params: GenerationParams | None = None,
        retrieval: RetrievalParams | None = None,
        admitted: Admitted | None = None,
    ) -> Answer:
        """`stream()` run to the end: the finished answer (the same per-request parameters)."""
        stream = self.stream(
            question, history=history, filters=filters, params=params, retrieval=retrieval, admitted=admitted
        )
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
        admitted: Admitted | None = None,
    ) -> AnswerStream:
        """Answer `question`; `history` holds the earlier questions of the conversation, oldest first.

        Per request, `retrieval` sets k and filters (`filters` alone is a shorthand that keeps the
        settings' k) and `params` the generation; left out, both come from the settings. `admitted`:
        the question as `admit` let it in already (then `question` and `history` are not read)."""
        turn = self._start(admitted or self.admit(question, history=history), retrieval, filters, params)
        self.gate_step(turn)  # before retrieval, before the model, before even opening the index
        if not turn.done:
            _ = self.retriever  # a missing index raises here, before streaming starts
        stream = AnswerStream(lambda holder: self._run(turn, holder))
        stream.emergency = turn.done
        return stream

    def evidence(self, admitted: Admitted, *, retrieval: RetrievalParams | None = None) -> Turn:
        """The steps before the prompt (gate, rewrite, retrieve, floor, order) for an admitted
        question: the passages an answer to it is given, or an answer already when it is an emergency
        or nothing relevant is found (`Turn.done`). For text written elsewhere, then `check`."""
        turn = self._start(admitted, retrieval, None, None)
        self.gate_step(turn)
        self._gather(turn)
        return turn

    def check(self, turn: Turn, text: str, *, grounding: str = "free") -> Answer:
        """`text` as the answer to `turn` (after `evidence`), through the same citation and grounding
        check as a model's answer in the `grounding` mode, and finished."""
        assert turn.answer is not None and not turn.done
        turn.pieces = [text]
        turn.answer.grounding = grounding
        self.check_step(turn)
        return turn.finish()

    def passages(self, retrieval: RetrievalParams | None = None) -> int:
        """How many passages a request is given: its own k, else the settings' (decided here only)."""
        return (retrieval.k if retrieval else None) or self.settings.retrieval.k

    def retrieval_params(
        self, retrieval: RetrievalParams | None = None, filters: Filters | None = None
    ) -> RetrievalParams:
        """The request's retrieval parameters, nothing left open: its k (else the settings') and its
        filters, or `filters` where given."""
        wanted = retrieval.filters if retrieval else None
        return RetrievalParams(self.passages(retrieval), wanted if filters is None else filters)

    def _start(
        self,
        admitted: Admitted,
        retrieval: RetrievalParams | None,
        filters: Filters | None,
        params: GenerationParams | None,
    ) -> Turn:
        return Turn(
            admitted.question,
            admitted.history,
            retrieval=self.retrieval_params(retrieval, filters),
            params=params,
            triaged=admitted.triage,
        )

    def _gather(self, turn: Turn) -> None:
        """The steps between triage and the prompt, as far as the turn is not answered already."""
        for step in (self.rewrite_step, self.retrieve_step, self.floor_step, self.order_step):
            if turn.done:
                break
            step(turn)

    def _run(self, turn: Turn, holder: AnswerStream) -> Iterator[str]:
        self._gather(turn)
        if not turn.done:
            self.prompt_step(turn)
        if turn.done:
            holder.answer = turn.finish()
            yield holder.answer.text
            return
        if turn.header:
            yield turn.header + "\n\n"
        try:
            yield from self.generate_step(turn)
        except GeneratorExit:  # the caller stopped reading (Stop): the answer is what was written
            turn.stopped = True
            self.check_step(turn)
            holder.answer = turn.finish()
            raise
        self.check_step(turn)
        holder.answer = turn.finish()

    # -- the steps ----------------------------------------------------------------

    def gate_step(self, turn: Turn) -> None:
        """Triage: emergencies are answered at once, with no retrieval and no model; urgent and
        non-English messages get their advice above the answer."""
        turn.answer = Answer(question=turn.question, text="", passages=[], variant=self.variant.as_dict())
        result = turn.triaged or self.triage.assess(turn.question)  # admitted questions: triaged already
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
        wanted = self.passages(turn.retrieval)
        k = wanted * 2 if self.settings.retrieval.mmr else wanted
        filters = turn.retrieval.filters if turn.retrieval else None
        turn.answer.passages = self.retriever.retrieve(turn.answer.query, k=k, filters=filters)
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
        k = self.passages(turn.retrieval)
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

    def grounding_of(self, turn: Turn) -> str:
        params = turn.params or GenerationParams.from_settings(self.settings.generation)
        return params.grounding or self.settings.generation.grounding

    def generate_step(self, turn: Turn) -> Iterator[str]:
        """The model's answer, streamed as the grounding mode allows: `free` streams the model's words
        as they come; `checked` shows each sentence once it is complete and checked; `extractive`
        does not call the model at all."""
        assert turn.answer is not None and turn.prompt is not None
        mode = self.grounding_of(turn)
        turn.answer.grounding = mode
        t = time.perf_counter()
        if mode == "extractive":
            turn.answer.model, turn.answer.quantization = "extractive", "none"
            text = self.extractive(turn)
            turn.pieces.append(text)
            turn.timings["first_token_s"] = turn.timings["generate_s"] = time.perf_counter() - t
            yield text
            return
        engine = self.engine
        turn.answer.model, turn.answer.quantization = engine.name, engine.quantization
        params = turn.params or GenerationParams.from_settings(self.settings.generation)
        asked = turn.answer.query or turn.question
        texts = [p.text for p in turn.answer.passages]
        checker = (
            SentenceStream(texts, question=asked, embedder=self.meaning_embedder)
            if mode == "checked"
            else None
        )
        for piece in engine.stream(turn.prompt.messages, params):
            if "model_first_token_s" not in turn.timings:
                turn.timings["model_first_token_s"] = time.perf_counter() - t
            turn.pieces.append(piece)
            shown = checker.feed(piece) if checker else piece
            if shown:
                turn.timings.setdefault("first_token_s", time.perf_counter() - t)
                yield shown
        if checker:
            rest = checker.finish()
            if rest:
                turn.timings.setdefault("first_token_s", time.perf_counter() - t)
                yield rest
        turn.timings.setdefault("first_token_s", time.perf_counter() - t)
        turn.timings["generate_s"] = time.perf_counter() - t

    def extractive(self, turn: Turn, max_sentences: int | None = None) -> str:
        """The passage sentences that answer the question, each cited, under their passage's title."""
        assert turn.answer is not None
        passages = turn.answer.passages
        texts = [p.text for p in passages]
        titles = [" - ".join(x for x in (p.title, p.section) if x) for p in passages]
        found = units(texts)
        query = turn.answer.query or turn.question
        similarity = None
        if found:
            try:
                import numpy as np

                q = np.asarray(self.embedder.embed_query(query), dtype=float)
                # each sentence read with its passage's title: "Take it ..." is about what the title names
                docs = [f"{titles[u.passage - 1]}: {u.text}" for u in found]
                vectors = np.asarray(self.embedder.embed_documents(docs), dtype=float)
                norms = np.linalg.norm(vectors, axis=1) * (np.linalg.norm(q) or 1.0)
                similarity = list(vectors @ q / np.where(norms == 0, 1.0, norms))
            except Exception as e:  # the lexical score alone still picks sentences
                log.warning("extractive answer without sentence similarity: %s", e)
        limit = max_sentences or self.settings.generation.extractive_sentences
        chosen = extract(
            query, texts, similarity=similarity, all_units=found, titles=titles, max_sentences=limit
        )
        turn.quoted.extend(quoted(u) for u in chosen)
        return extractive_text(chosen, titles)

    def check_step(self, turn: Turn) -> None:
        """Invalid citations removed; every sentence checked against the passages (`chatbot.grounding`):
        the shown text keeps what they support, says what they say instead of what they contradict,
        and withholds (`checked`) or marks (`free`) what they do not say."""
        answer = turn.answer
        assert answer is not None
        n = len(answer.passages)
        texts = [p.text for p in answer.passages]
        raw = "".join(turn.pieces)
        answer.raw_text = raw
        mode = answer.grounding or self.grounding_of(turn)
        check = check_citations(raw, n)
        if check.invalid:
            log.info("removed citations to missing passages: %s", check.invalid)
        if mode == "extractive":
            shown = Presented(check.text, checks=list(turn.quoted))
        else:
            shown = present(
                check.text,
                texts,
                inline=mode == "free",
                question=answer.query or turn.question,
                embedder=self.meaning_embedder,
            )
            if mode == "checked" and not shown.supported and not turn.stopped:
                # nothing of the model's own survived: what the sources say answers instead (its
                # corrections kept, its claim-free lines such as "consult your doctor" dropped)
                lead = "\n".join(dict.fromkeys(source_says_of(c) for c in shown.corrected))
                shown.text = "\n\n".join(x for x in (lead, EXTRACTIVE_LEAD + self.extractive(turn)) if x)
                shown.checks.extend(turn.quoted)
        final = check_citations(shown.text, n)
        answer.text, answer.cited, answer.invalid_citations = final.text, final.cited, check.invalid
        answer.sentences = [c.as_dict() for c in shown.checks]
        answer.withheld, answer.corrected = shown.withheld, shown.corrected
        answer.unsupported = [c.sentence for c in shown.checks if c.verdict != SUPPORTED]
        answer.attributed = [c for c in final.cited if c not in check.cited]
        answer.stopped = turn.stopped
        answer.text, answer.removed_numbers = remove_invented_numbers(answer.text, texts)
        if answer.removed_numbers:
            log.warning("removed phone numbers the sources do not give: %s", answer.removed_numbers)
