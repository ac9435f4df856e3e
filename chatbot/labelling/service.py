"""The comparison service: the logic of a labelling round, with no widgets.

Serve a round (a queued item's prepared pair at once, or both answers written now and streamed),
store both responses with their provenance, prepare queued pairs ahead (`medchat prefs prepare`
and the prepare worker), record skips and votes. `chatbot.ui.compare` renders it; scripts and
`bench/bench_train.py` drive it directly.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from chatbot.errors import EmptyQuestionError, MedchatError, storage_failure
from chatbot.labelling.store.prefs import JudgmentError, JudgmentIn, ResponseIn, Round
from chatbot.limits import check_rationale

if TYPE_CHECKING:
    from chatbot.chain import Admitted
    from chatbot.labelling.store.models import Comparison, Judgment, QueueItem
    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.labelling.variants import VariantRunner
    from chatbot.settings import Settings

log = logging.getLogger(__name__)

GOLD_VARIANTS = ("gold-better", "gold-worse")

GUIDELINES_VERSION = "v2"
GUIDELINES = f"""**Labelling guidelines ({GUIDELINES_VERSION})**

1. Read the question, then both answers and the passages they cite.
2. **Which is more helpful?** The one a patient or colleague would be better served by: correct,
   supported by its sources, answering what was asked. *Tie* when neither is better; *Both are bad*
   when neither should be given.
3. **By how much?** (Llama 2 scale, only when A or B wins): *significantly* - you would clearly
   not send the other; *better* - a clear difference; *slightly* - a small one; *negligibly / unsure* -
   hardly any, or you cannot tell.
4. **Safety** is judged apart from helpfulness. An answer is *unsafe* when acting on it could harm
   someone: a wrong dose or threshold, advice that delays urgent care, a missing warning that matters,
   or something invented that the sources do not say. Say in the rationale what could cause harm.
5. Do not guess which system wrote an answer; the names are shown after you vote.
"""
ALL_DONE = (
    "🎉 **All done.** You have judged every queued question that is waiting for you. Thank you! "
    "You can type a question of your own above, or come back when your admin loads more."
)


def skipped_message(n: int) -> str:
    """The end screen while skipped pairs remain: how many, and how to get them back."""
    which = "question" if n == 1 else "questions"
    return (
        f"Every other queued question is done. You skipped **{n}** {which}: press **Next question** "
        f"to see {'it' if n == 1 else 'them'} again."
    )


class NoQuestionsLeft(MedchatError):
    """The queue has nothing left for this annotator."""


class NotCompared(MedchatError):
    """A question that is answered at once and not compared (an emergency)."""


@dataclass
class PairUpdate:
    """Both columns so far; `round` is set once both answers are stored. While the pair is written,
    `writing` says which column the model is on ("left" or "right"; one model writes both in turn),
    from before its first word: the page says so at once instead of a spinner."""

    left: str
    right: str
    round: Round | None = None
    question: str = ""
    writing: str | None = None


@dataclass
class Draft:
    """What an annotator has chosen so far on the pair on screen, kept on the server so that a
    reload brings the selections back (`CompareService.keep_draft`)."""

    comparison_id: str
    values: dict[str, Any] = field(default_factory=dict)


class CompareService:
    def __init__(self, store: PreferenceStore, runner: VariantRunner, settings: Settings) -> None:
        self.store, self.runner, self.settings = store, runner, settings
        # queued items whose pair is being written now (by Next or the prepare worker): nobody else
        # starts the same generation, and Next offers a ready item before one of these
        self._writing: set[str] = set()
        self._writing_lock = threading.Lock()
        # per annotator, in this process only (as the chat's conversations): the selections made on
        # the pair on screen, and the tab they were on, so that a reload opens where they were
        self._drafts: dict[str, Draft] = {}
        self._places: dict[str, str] = {}

    # -- where each annotator is -----------------------------------------------------------------

    def keep_draft(self, annotator: str, comparison_id: str | None, values: dict[str, Any]) -> None:
        """Remember the selections on `comparison_id` (none: forget them)."""
        if comparison_id:
            self._drafts[annotator] = Draft(comparison_id, dict(values))
        else:
            self._drafts.pop(annotator, None)

    def draft(self, annotator: str, comparison_id: str | None) -> dict[str, Any] | None:
        """The selections kept for this pair, if it is the one they were made on."""
        d = self._drafts.get(annotator)
        if d is None or not comparison_id or d.comparison_id != comparison_id:
            return None
        return dict(d.values)

    def drop_draft(self, annotator: str) -> None:
        self._drafts.pop(annotator, None)

    def keep_place(self, annotator: str, tab: str) -> None:
        self._places[annotator] = tab

    def place(self, annotator: str) -> str | None:
        """The tab this annotator last opened (None: not known in this process)."""
        return self._places.get(annotator)

    @contextmanager
    def _claim(self, item_id: str) -> Iterator[bool]:
        """True (and the item is ours until the block ends) unless someone is writing it already."""
        with self._writing_lock:
            free = item_id not in self._writing
            self._writing.add(item_id)
        try:
            yield free
        finally:
            if free:
                with self._writing_lock:
                    self._writing.discard(item_id)

    # -- serving -------------------------------------------------------------------------------

    def ask(self, annotator: str, question: str, *, rng: random.Random | None = None) -> Iterator[PairUpdate]:
        """A free-typed question: two random variants answer it, streamed one after the other."""
        rng = rng or random.Random()
        try:  # limits, normalisation and triage (the rules and the classifier, as in chat), once
            admitted = self.runner.admit(question)
        except EmptyQuestionError as e:
            raise MedchatError(
                "Type a question first, or press 'Next question' to take one from the queue."
            ) from e
        if admitted.emergency:  # two copies of the same guidance are nothing to vote on
            raise NotCompared(self.runner.chain.triage.emergency_message(admitted.triage.category))
        question = admitted.question
        a, b = rng.sample(sorted(self.runner.variants), 2)
        for texts, left_slot, stored, slot in self._pair(question, a, b, rng, admitted):
            if stored is None:
                yield _writing(texts, left_slot, slot, question)
                continue
            c = self.store.create_comparison(question, stored["a"], stored["b"], created_by=annotator)
            yield self._serve(c.id, annotator, rng, left_slot)

    def next(
        self, annotator: str, *, rng: random.Random | None = None, leaving: str | None = None
    ) -> Iterator[PairUpdate]:
        """The next queued item for this annotator: its prepared pair at once, else generated now.

        `leaving` is the pair on screen: moving on without a vote records it as skipped."""
        rng = rng or random.Random()
        if leaving:
            self.skip(leaving, annotator)
        with self._writing_lock:
            busy = set(self._writing)
        for _ in range(8):  # another annotator may fill an item's overlap between choosing and serving
            item = self.store.next_queue_item(
                annotator, gold_ratio=self.settings.prefs.gold_ratio, rng=rng, busy=busy
            )
            existing = self.store.comparison_for_item(item.id) if item is not None else None
            if item is None or existing is None:
                break
            held = self.store.assign_within_overlap(existing.id, annotator, rng.choice("ab"))
            if held is not None:
                r = self.store.round(existing.id, annotator)
                assert r is not None
                yield PairUpdate(r.left.text, r.right.text, r, r.question)
                return
        else:  # every item chosen filled up before it could be served: none is free now
            item = existing = None
        if item is None:
            # skipped pairs come back after everything else, the earliest skip first; the one just
            # skipped is not handed straight back: the end screen offers it instead; one that others
            # judged meanwhile (it went back to the pool) does not come back
            skipped = [
                c
                for c in self.store.skipped_comparisons(annotator)
                if self.store.room_after_skip(c, annotator)
            ]
            again = [c for c in skipped if c != leaving]
            if again:
                self.store.unskip(again[0], annotator)
                r = self.store.round(again[0], annotator)
                assert r is not None
                yield PairUpdate(r.left.text, r.right.text, r, r.question)
                return
            raise NoQuestionsLeft(skipped_message(len(skipped)) if skipped else ALL_DONE)
        if item.is_gold:
            yield self._serve(self.prepare_item(item, rng=rng).id, annotator, rng)
            return
        a, b = rng.sample(sorted(self.runner.variants), 2)
        with self._claim(item.id):  # the worker leaves it alone meanwhile
            for texts, left_slot, stored, slot in self._pair(item.question, a, b, rng):
                if stored is None:
                    yield _writing(texts, left_slot, slot, item.question)
                    continue
                c = self.store.create_comparison(
                    item.question, stored["a"], stored["b"], created_by=annotator, queue_item_id=item.id
                )
                # a racing annotator may have stored it first: then both judge that one
                yield self._serve(c.id, annotator, rng, left_slot)

    def skip(self, comparison_id: str, annotator: str) -> bool:
        skipped = self.store.skip(comparison_id, annotator)
        if skipped:
            log.info("%s skipped comparison %s", annotator, comparison_id)
        return skipped

    def prepare_item(self, item: QueueItem, *, rng: random.Random | None = None) -> Comparison:
        """Store the pair for a queued item without serving it (`medchat prefs prepare`, the worker)."""
        rng = rng or random.Random()
        if item.is_gold:
            assert item.gold_better is not None and item.gold_worse is not None
            admitted = self.runner.admit(item.question)
            better, worse = (
                self._gold(item.question, text, name, admitted)
                for text, name in ((item.gold_better, GOLD_VARIANTS[0]), (item.gold_worse, GOLD_VARIANTS[1]))
            )
            return self.store.create_comparison(
                item.question, better, worse, created_by="prepare", queue_item_id=item.id, is_gold=True
            )
        a, b = rng.sample(sorted(self.runner.variants), 2)
        stored = [pair for _texts, _left, pair, _slot in self._pair(item.question, a, b, rng)][-1]
        assert stored is not None
        return self.store.create_comparison(
            item.question, stored["a"], stored["b"], created_by="prepare", queue_item_id=item.id
        )

    def prepare(self, limit: int, *, rng: random.Random | None = None) -> int:
        """Generate and store pairs for up to `limit` queued items that have none; returns how many."""
        done = 0
        for item in self.store.unprepared_items(limit + len(self._writing)):
            if done >= limit:
                break
            with self._claim(item.id) as free:
                if not free:  # an annotator's Next is writing this one now
                    continue
                if self.store.comparison_for_item(item.id) is None:
                    self.prepare_item(item, rng=rng)
                    done += 1
        return done

    def _gold(self, question: str, text: str, name: str, admitted: Admitted) -> ResponseIn:
        answer = self.runner.dress(question, text, admitted=admitted)
        return ResponseIn.from_answer(answer, variant=name, variant_config={}, generation={}, k=None)

    def _serve(
        self, comparison_id: str, annotator: str, rng: random.Random, left_slot: str | None = None
    ) -> PairUpdate:
        self.store.assign(comparison_id, annotator, left_slot or rng.choice("ab"))
        r = self.store.round(comparison_id, annotator)
        assert r is not None
        return PairUpdate(r.left.text, r.right.text, r, r.question)

    def _pair(
        self, question: str, a: str, b: str, rng: random.Random, admitted: Admitted | None = None
    ) -> Iterator[tuple[dict[str, str], str, dict[str, ResponseIn] | None, str | None]]:
        """(texts so far by slot, the slot shown left, None, the slot being written) while writing,
        from before each answer's first word (retrieval and the prompt take seconds); the stored pair
        last (its slot None). The question is admitted (and triaged) once for both answers."""
        admitted = admitted or self.runner.admit(question)
        left_slot = rng.choice("ab")
        texts = {"a": "", "b": ""}
        stored: dict[str, ResponseIn] = {}
        # one after the other: a single local model cannot interleave two generations
        for slot in (left_slot, _other(left_slot)):
            name = a if slot == "a" else b
            t0 = time.perf_counter()
            run = self.runner.run(name, question, admitted=admitted)
            try:
                yield texts, left_slot, None, slot  # this answer has begun: say so before its first word
                for piece in run.stream:
                    texts[slot] += piece
                    yield texts, left_slot, None, slot
            finally:
                run.stream.close()
            answer = run.stream.answer
            assert answer is not None
            texts[slot] = answer.text
            stored[slot] = ResponseIn.from_answer(
                answer,
                variant=name,
                variant_config=run.variant.as_dict(),
                generation=asdict(run.params),
                k=self.runner.chain.passages(run.retrieval),
                seconds=round(time.perf_counter() - t0, 3),
            )
        yield texts, left_slot, stored, None

    # -- voting --------------------------------------------------------------------------------

    def submit(self, judgment: JudgmentIn) -> Judgment:
        check_rationale(judgment.rationale, self.settings.limits)
        refusal = contradiction(judgment)
        if refusal:
            raise JudgmentError(refusal)
        judgment.guideline_version = judgment.guideline_version or self.settings.prefs.guideline_version
        try:
            return self.store.submit(judgment)
        except Exception as e:  # a full disk or read-only database: a sentence, not SQLAlchemy's text
            failure = storage_failure(e, "your vote")
            if failure is None:
                raise
            raise failure from e

    def progress_markdown(self, annotator: str) -> str:
        served, total = self.store.progress(annotator)
        if not total:
            return "No queued questions: type your own."
        if served >= total and self.store.pending_round(annotator) is None:
            skipped = len(self.store.skipped_comparisons(annotator))
            if skipped:
                return f"**{total - skipped}** of **{total}** queued items done, **{skipped}** skipped."
            return f"All **{total}** queued items done."
        return f"Item **{max(served, 1)}** of **{total}**"


def _other(slot: str) -> str:
    return "b" if slot == "a" else "a"


def _writing(texts: dict[str, str], left_slot: str, slot: str | None, question: str) -> PairUpdate:
    side = None if slot is None else ("left" if slot == left_slot else "right")
    return PairUpdate(texts[left_slot], texts[_other(left_slot)], question=question, writing=side)


def contradiction(j: JudgmentIn) -> str | None:
    """Why a vote contradicts itself in a way no rationale can mend, in words that say what to change;
    None when it does not.

    Preferring an answer one marked unsafe to one marked safe is such a vote: training never uses it
    (Llama 2), so saving it would cost the annotator's time and leave the pair with no usable vote. The
    store keeps accepting such rows (older databases hold some, and exports leave them out); the Compare
    tab and scripts submit through here."""
    if j.choice in ("A", "B") and j.safety_bin == "one_unsafe" and j.unsafe_side == j.choice:
        other = "B" if j.choice == "A" else "A"
        return (
            f"You chose {j.choice} as more helpful but marked {j.choice} unsafe and {other} safe, and an "
            f"unsafe answer cannot be the better one: pick {other}, Tie or Both are bad, or change the "
            "safety verdict."
        )
    return None
