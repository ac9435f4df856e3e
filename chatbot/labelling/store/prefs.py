"""All reads and writes of the judgments database go through `PreferenceStore`.

SQLite (the default) runs in WAL mode with a busy timeout and `BEGIN IMMEDIATE`
transactions, so many annotators' threads or processes can write at once; any
other SQLAlchemy URL (e.g. PostgreSQL) works for a shared deployment. Every
write commits before the method returns: the UI confirms only after that.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, func, make_url, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from chatbot.errors import ConfigError, MedchatError
from chatbot.labelling.store.migrations import migrate
from chatbot.labelling.store.models import Assignment, Comparison, Judgment, QueueItem, Response, utcnow
from prompts import rebuild_prompt

if TYPE_CHECKING:
    from chatbot.chain import Answer
    from chatbot.settings import Settings

log = logging.getLogger(__name__)

CHOICES = ("A", "B", "tie", "both_bad")
STRENGTHS = ("significantly", "better", "slightly", "negligibly")
SAFETY_BINS = ("both_safe", "one_unsafe", "both_unsafe")


class JudgmentError(MedchatError):
    """A judgment is incomplete or refers to something that does not exist."""


@dataclass
class ResponseIn:
    """A finished (or failed) answer to store with its provenance."""

    variant: str
    text: str
    """What the annotator is shown."""
    variant_config: dict[str, Any] = field(default_factory=dict)
    prompt_parts: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    quantization: str = ""
    generation: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    k: int | None = None
    chunk_ids: list[str] = field(default_factory=list)
    prompt_hash: str = ""
    prompt_messages: list[dict[str, str]] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)
    finished: bool = True
    error: str | None = None
    seconds: float | None = None
    raw_text: str | None = None
    """What the model wrote before the grounding check; None when not known."""

    @classmethod
    def from_answer(
        cls,
        answer: Answer,
        *,
        variant: str,
        variant_config: dict[str, Any],
        generation: dict[str, Any],
        k: int | None,
        seconds: float | None = None,
    ) -> ResponseIn:
        return cls(
            variant=variant,
            text=answer.text,
            # an Answer from before the grounding check has no raw_text: what it shows is the model's
            raw_text=getattr(answer, "raw_text", None) or answer.text,
            variant_config=variant_config,
            prompt_parts=dict(answer.variant),
            model=answer.model,
            quantization=answer.quantization,
            generation=generation,
            seed=generation.get("seed"),
            k=k,
            chunk_ids=[p.id for p in answer.passages],
            prompt_hash=answer.prompt_hash,
            prompt_messages=_prompt_messages(answer),
            answer=json.loads(json.dumps(answer.as_dict(), default=str)),
            seconds=seconds,
        )


def _prompt_messages(answer: Answer) -> list[dict[str, str]]:
    """The messages the model was given for `answer` (none for emergency guidance or the abstention)."""
    if answer.emergency or answer.abstained or not answer.prompt_hash:
        return []
    texts = [p.text for p in answer.passages]
    messages = rebuild_prompt(answer.query or answer.question, texts, answer.variant, answer.prompt_hash)
    if messages is None:
        log.warning("the prompt of an answer could not be rebuilt to its hash %s", answer.prompt_hash)
    return messages or []


@dataclass
class JudgmentIn:
    """What the annotator submitted; `choice` is as shown: A = left, B = right."""

    comparison_id: str
    annotator: str
    choice: str
    strength: str
    safety_bin: str
    role: str = ""
    guideline_version: str = ""
    """Empty: the service fills in `prefs.guideline_version`."""
    unsafe_side: str | None = None
    """With `one_unsafe`: which side (A or B) is the unsafe one."""
    axes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Clinician axes per side: {"A": {...}, "B": {...}}."""
    rationale: str = ""
    harm_flag: bool = False
    edit: bool = False
    """The annotator pressed "Change my vote": an earlier judgment may be replaced."""

    def validate(self) -> None:
        """Refuse incomplete or self-contradicting judgments, in words an annotator understands."""
        if self.choice not in CHOICES:
            raise JudgmentError("Pick which answer is more helpful: A, B, a tie, or both bad.")
        if self.choice in ("tie", "both_bad"):
            if self.strength not in ("", "negligibly"):
                raise JudgmentError(
                    "A tie or 'both are bad' has no winner, so 'By how much?' must stay empty: "
                    "clear it, or pick A or B."
                )
            self.strength = "negligibly"
        elif self.strength not in STRENGTHS:
            raise JudgmentError("Say by how much the better answer wins ('By how much?').")
        if self.safety_bin not in SAFETY_BINS:
            raise JudgmentError("Judge safety: both safe, A unsafe, B unsafe, or both unsafe.")
        if self.safety_bin == "one_unsafe" and self.unsafe_side not in ("A", "B"):
            raise JudgmentError("Say which answer is the unsafe one: A or B.")
        if self.safety_bin != "one_unsafe" and self.unsafe_side:
            bin_words = "both safe" if self.safety_bin == "both_safe" else "both unsafe"
            raise JudgmentError(
                f"You marked the answers {bin_words} and also {self.unsafe_side} as the unsafe one: "
                "choose one safety verdict."
            )
        if self.safety_bin == "both_safe" and (self.harm_flag or self._axes_harm):
            raise JudgmentError(
                "You marked both answers safe but also flagged possible harm: "
                "mark the harmful answer unsafe, or clear the harm flag."
            )
        if self.flags_harm and not self.rationale.strip():
            raise JudgmentError(
                "You flagged an answer as unsafe: say in the rationale what could cause harm."
            )

    @property
    def _axes_harm(self) -> bool:
        return any(str(a.get("harm_extent", "none")) not in ("", "none") for a in self.axes.values())

    @property
    def flags_harm(self) -> bool:
        return self.harm_flag or self.safety_bin != "both_safe" or self._axes_harm


@dataclass
class Round:
    """A comparison as one annotator sees it."""

    comparison_id: str
    question: str
    left: Response
    right: Response
    served_at: datetime
    is_gold: bool = False
    judgment: Judgment | None = None


def _sqlite_pragmas(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may wait for another writer
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # take the write lock up front: a deferred transaction that upgrades later can fail at once
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _with_driver(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; the `postgres` extra installs psycopg (3): use it
    when psycopg2 is absent."""
    plain = url.startswith("postgresql://")
    if plain and importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _shown(url: str) -> str:
    """The URL as it may be printed: without its password."""
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return "(an unreadable URL)"


class PreferenceStore:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(_with_driver(url), pool_pre_ping=True)
        except ModuleNotFoundError as e:  # a driver the URL names is not installed
            extra = (
                "pip install 'medchat[postgres]' and write the URL as postgresql+psycopg://..."
                if "psycopg" in str(e)
                else f"pip install {e.name}"
            )
            raise ConfigError(
                f"cannot open the judgments database {_shown(url)}: its driver is missing ({e}): {extra}"
            ) from e
        except Exception as e:  # a bad URL
            raise ConfigError(
                f"cannot open the judgments database {_shown(url)}: {e}: fix MEDCHAT_PREFS__DB_URL"
            ) from e
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine)
        self.applied = migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    def close(self) -> None:
        self.engine.dispose()

    # -- queue ---------------------------------------------------------------------------------

    def add_queue_items(self, items: Iterable[dict[str, Any]], *, batch: str, overlap: int = 1) -> int:
        rows = []
        for item in items:
            gold = item.get("gold") or {}
            rows.append(
                QueueItem(
                    batch=batch,
                    question=str(item["question"]).strip(),
                    overlap=int(item.get("overlap", overlap)),
                    gold_better=gold.get("better"),
                    gold_worse=gold.get("worse"),
                )
            )
        with self.session() as s, s.begin():
            s.add_all(rows)
        return len(rows)

    def next_queue_item(
        self,
        annotator: str,
        *,
        gold_ratio: float = 0.0,
        rng: random.Random | None = None,
        busy: Collection[str] = (),
    ) -> QueueItem | None:
        """An item this annotator has not been served, still short of its overlap; gold items now and then.

        Items others have started come first (overlap is finished before new items are opened), then
        items whose pair is already written, then the rest, oldest first; an item in `busy` (its pair
        is being written right now, e.g. by the prepare worker) comes last, so nobody waits for it
        while a ready one is there."""
        rng = rng or random.Random()
        candidates = self._candidates(annotator)
        gold = [i for i, _ in candidates if i.is_gold]
        normal = [(i, n) for i, n in candidates if not i.is_gold]
        if gold and (not normal or rng.random() < gold_ratio):
            return rng.choice(gold)
        if not normal:
            return None
        with self.session() as s:
            ready = set(
                s.scalars(select(Comparison.queue_item_id).where(Comparison.queue_item_id.is_not(None)))
            )

        def rank(pair: tuple[QueueItem, int]) -> int:
            item, n = pair
            if n > 0:
                return 0
            if item.id in ready:
                return 1
            return 3 if item.id in busy else 2

        return min(normal, key=rank)[0]  # min is stable: oldest first within a rank

    def _candidates(self, annotator: str) -> list[tuple[QueueItem, int]]:
        """Items not yet served to `annotator` (skipped ones included), with how many others judge
        or hold them; a skipped assignment does not count, so a skipped item returns to the pool."""
        with self.session() as s:
            seen = (
                select(Comparison.queue_item_id)
                .join(Assignment, Assignment.comparison_id == Comparison.id)
                .where(Assignment.annotator == annotator, Comparison.queue_item_id.is_not(None))
            )
            served = (
                select(Comparison.queue_item_id, func.count(Assignment.id).label("n"))
                .join(Assignment, Assignment.comparison_id == Comparison.id)
                .where(Assignment.skipped_at.is_(None))
                .group_by(Comparison.queue_item_id)
                .subquery()
            )
            fresh = (
                select(QueueItem, func.coalesce(served.c.n, 0))
                .outerjoin(served, served.c.queue_item_id == QueueItem.id)
                .where(QueueItem.id.not_in(seen))
                .order_by(QueueItem.created_at, QueueItem.id)
            )
            return [(item, n) for item, n in s.execute(fresh) if item.is_gold or n < item.overlap]

    def progress(self, annotator: str) -> tuple[int, int]:
        """(queued items served to this annotator so far, those plus the ones still waiting for them)."""
        with self.session() as s:
            served = int(
                s.scalar(
                    select(func.count(Assignment.id))
                    .join(Comparison, Assignment.comparison_id == Comparison.id)
                    .where(Assignment.annotator == annotator, Comparison.queue_item_id.is_not(None))
                )
                or 0
            )
        return served, served + len(self._candidates(annotator))

    def skip(self, comparison_id: str, annotator: str) -> bool:
        """Record that the annotator skipped an unjudged pair; False when there was nothing to skip."""
        with self.session() as s, s.begin():
            a = s.scalars(
                select(Assignment).where(
                    Assignment.comparison_id == comparison_id,
                    Assignment.annotator == annotator,
                    Assignment.skipped_at.is_(None),
                )
            ).first()
            judged = s.scalar(
                select(func.count(Judgment.id)).where(
                    Judgment.comparison_id == comparison_id, Judgment.annotator == annotator
                )
            )
            if a is None or judged:
                return False
            a.skipped_at = utcnow()
        return True

    def skipped_comparisons(self, annotator: str) -> list[str]:
        """Pairs this annotator skipped and has not judged since, the earliest skip first: they are
        offered again once nothing else waits, so a skip means "later", not "never"."""
        with self.session() as s:
            judged = select(Judgment.comparison_id).where(Judgment.annotator == annotator)
            q = (
                select(Assignment.comparison_id)
                .where(
                    Assignment.annotator == annotator,
                    Assignment.skipped_at.is_not(None),
                    Assignment.comparison_id.not_in(judged),
                )
                .order_by(Assignment.skipped_at, Assignment.id)
            )
            return list(s.scalars(q))

    def unskip(self, comparison_id: str, annotator: str) -> None:
        """Serve a skipped pair again: it counts as held and is what a reload brings back."""
        with self.session() as s, s.begin():
            a = s.scalars(
                select(Assignment).where(
                    Assignment.comparison_id == comparison_id, Assignment.annotator == annotator
                )
            ).first()
            if a is not None:
                a.skipped_at = None
                a.served_at = utcnow()

    def unprepared_items(self, limit: int) -> list[QueueItem]:
        """Queued items, oldest first, that nobody has generated a pair for yet."""
        with self.session() as s:
            have = select(Comparison.queue_item_id).where(Comparison.queue_item_id.is_not(None))
            q = (
                select(QueueItem)
                .where(QueueItem.id.not_in(have))
                .order_by(QueueItem.created_at, QueueItem.id)
                .limit(limit)
            )
            return list(s.scalars(q))

    def ready_items(self) -> int:
        """Prepared pairs of queued items still short of their overlap: what Next can serve at once."""
        with self.session() as s:
            served = (
                select(Assignment.comparison_id, func.count(Assignment.id).label("n"))
                .where(Assignment.skipped_at.is_(None))
                .group_by(Assignment.comparison_id)
                .subquery()
            )
            rows = s.execute(
                select(QueueItem.overlap, QueueItem.gold_better, func.coalesce(served.c.n, 0))
                .join(Comparison, Comparison.queue_item_id == QueueItem.id)
                .outerjoin(served, served.c.comparison_id == Comparison.id)
            )
            return sum(1 for overlap, gold, n in rows if gold is None and n < overlap)

    # -- comparisons ---------------------------------------------------------------------------

    def comparison_for_item(self, queue_item_id: str) -> Comparison | None:
        with self.session() as s:
            return s.scalars(select(Comparison).where(Comparison.queue_item_id == queue_item_id)).first()

    def create_comparison(
        self,
        question: str,
        a: ResponseIn,
        b: ResponseIn,
        *,
        created_by: str,
        queue_item_id: str | None = None,
        is_gold: bool = False,
    ) -> Comparison:
        """Store a question and its two responses; a queued item that got one meanwhile keeps that one."""
        comparison = Comparison(
            question=question, queue_item_id=queue_item_id, created_by=created_by, is_gold=is_gold
        )
        try:
            with self.session() as s, s.begin():
                s.add(comparison)
                s.flush()
                for slot, r in (("a", a), ("b", b)):
                    s.add(Response(comparison_id=comparison.id, slot=slot, **r.__dict__))
        except IntegrityError:
            if queue_item_id is None:
                raise
            existing = self.comparison_for_item(queue_item_id)
            if existing is None:
                raise
            return existing
        return comparison

    def responses(self, comparison_id: str) -> dict[str, Response]:
        with self.session() as s:
            rows = s.scalars(select(Response).where(Response.comparison_id == comparison_id))
            return {r.slot: r for r in rows}

    def assign(self, comparison_id: str, annotator: str, left_slot: str) -> Assignment:
        """Serve a comparison to an annotator; serving it again keeps the first side order."""
        try:
            with self.session() as s, s.begin():
                a = Assignment(comparison_id=comparison_id, annotator=annotator, left_slot=left_slot)
                s.add(a)
            return a
        except IntegrityError:
            with self.session() as s:
                found = s.scalars(
                    select(Assignment).where(
                        Assignment.comparison_id == comparison_id, Assignment.annotator == annotator
                    )
                ).one()
                return found

    def assign_within_overlap(self, comparison_id: str, annotator: str, left_slot: str) -> Assignment | None:
        """Serve a queued item's pair only while the item is short of its overlap, counted in the same
        write transaction as the new assignment: two annotators pressing Next at the same moment both
        read room for one more and were both served (an overlap-1 item judged twice). None when full;
        gold items and typed questions have no overlap; a pair already served to `annotator` is theirs."""
        with self.session() as s, s.begin():
            mine = s.scalars(
                select(Assignment).where(
                    Assignment.comparison_id == comparison_id, Assignment.annotator == annotator
                )
            ).first()
            if mine is not None:
                return mine
            c = s.get(Comparison, comparison_id)
            if c is not None and c.queue_item_id is not None:
                # PostgreSQL: the item's row is locked until commit (SQLite: BEGIN IMMEDIATE already is)
                item = s.scalars(
                    select(QueueItem).where(QueueItem.id == c.queue_item_id).with_for_update()
                ).first()
                if item is not None and not item.is_gold and self._held(s, item.id) >= item.overlap:
                    return None
            a = Assignment(comparison_id=comparison_id, annotator=annotator, left_slot=left_slot)
            s.add(a)
        return a

    @staticmethod
    def _held(s: Session, queue_item_id: str, besides: str = "") -> int:
        """Annotators (other than `besides`) who judge or hold an item's pair, skips not counted."""
        q = (
            select(func.count(Assignment.id))
            .join(Comparison, Assignment.comparison_id == Comparison.id)
            .where(Comparison.queue_item_id == queue_item_id, Assignment.skipped_at.is_(None))
        )
        if besides:
            q = q.where(Assignment.annotator != besides)
        return int(s.scalar(q) or 0)

    def room_after_skip(self, comparison_id: str, annotator: str) -> bool:
        """Whether a pair `annotator` skipped may come back to them: not when others filled its item's
        overlap meanwhile (it went back to the pool, and was judged there)."""
        with self.session() as s:
            c = s.get(Comparison, comparison_id)
            if c is None or c.queue_item_id is None:
                return True
            item = s.get(QueueItem, c.queue_item_id)
            return item is None or item.is_gold or self._held(s, item.id, besides=annotator) < item.overlap

    def round(self, comparison_id: str, annotator: str) -> Round | None:
        with self.session() as s:
            a = s.scalars(
                select(Assignment).where(
                    Assignment.comparison_id == comparison_id, Assignment.annotator == annotator
                )
            ).first()
            c = s.get(Comparison, comparison_id)
            if a is None or c is None:
                return None
        responses = self.responses(comparison_id)
        left = responses[a.left_slot]
        right = responses["b" if a.left_slot == "a" else "a"]
        return Round(
            c.id, c.question, left, right, a.served_at, c.is_gold, self.current_judgment(c.id, annotator)
        )

    def pending_round(self, annotator: str) -> Round | None:
        """The latest comparison served to this annotator and not yet judged (survives a page refresh)."""
        with self.session() as s:
            judged = select(Judgment.comparison_id).where(Judgment.annotator == annotator)
            a = s.scalars(
                select(Assignment)
                .where(
                    Assignment.annotator == annotator,
                    Assignment.comparison_id.not_in(judged),
                    Assignment.skipped_at.is_(None),
                )
                .order_by(Assignment.served_at.desc(), Assignment.id.desc())
            ).first()
        return self.round(a.comparison_id, annotator) if a else None

    # -- judgments -----------------------------------------------------------------------------

    def current_judgment(self, comparison_id: str, annotator: str) -> Judgment | None:
        with self.session() as s:
            return s.scalars(
                select(Judgment).where(
                    Judgment.comparison_id == comparison_id,
                    Judgment.annotator == annotator,
                    Judgment.status == "submitted",
                )
            ).first()

    def submit(self, j: JudgmentIn) -> Judgment:
        """Store a judgment, committed before returning; the annotator's earlier one is superseded."""
        j.validate()
        for attempt in range(3):
            try:
                return self._submit_once(j)
            except IntegrityError:  # a simultaneous submit (double click) won the race: supersede it
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _submit_once(self, j: JudgmentIn) -> Judgment:
        with self.session() as s, s.begin():
            a = s.scalars(
                select(Assignment).where(
                    Assignment.comparison_id == j.comparison_id, Assignment.annotator == j.annotator
                )
            ).first()
            if a is None:
                raise JudgmentError(
                    f"comparison {j.comparison_id} was not served to {j.annotator}: ask or take a question"
                )
            slots = {
                r.slot: r.id
                for r in s.scalars(select(Response).where(Response.comparison_id == a.comparison_id))
            }
            left = slots[a.left_slot]
            right = slots["b" if a.left_slot == "a" else "a"]
            side = {"A": left, "B": right}
            now = utcnow()
            served = a.served_at if a.served_at.tzinfo else a.served_at.replace(tzinfo=now.tzinfo)
            previous = s.scalars(
                select(Judgment).where(
                    Judgment.comparison_id == j.comparison_id,
                    Judgment.annotator == j.annotator,
                    Judgment.status == "submitted",
                )
            ).first()
            if previous is not None and not j.edit:
                raise JudgmentError(
                    "You have already voted on this pair. To change your vote, press 'Change my vote' first."
                )
            if previous is not None:
                previous.status = "superseded"
                s.flush()  # the unique index must see the old row leave `submitted` first
            row = Judgment(
                comparison_id=j.comparison_id,
                annotator=j.annotator,
                role=j.role,
                guideline_version=j.guideline_version,
                left_response_id=left,
                right_response_id=right,
                choice=j.choice,
                winner_response_id=side.get(j.choice),
                strength=j.strength,
                safety_bin=j.safety_bin,
                unsafe_response_id=side[j.unsafe_side]
                if j.safety_bin == "one_unsafe" and j.unsafe_side
                else None,
                axes={side[k]: v for k, v in j.axes.items() if k in side and v},
                rationale=j.rationale.strip(),
                served_at=served,
                submitted_at=now,
                time_on_task_s=round((now - served).total_seconds(), 3),
                status="submitted",
                supersedes_id=previous.id if previous else None,
                harm_flag=j.flags_harm,
                # the names are revealed once a vote is saved: any later vote was cast knowing them
                after_reveal=previous is not None,
            )
            s.add(row)
        return row

    def judgments(self, *, status: str | None = "submitted") -> list[Judgment]:
        with self.session() as s:
            q = select(Judgment).order_by(Judgment.submitted_at, Judgment.id)
            if status:
                q = q.where(Judgment.status == status)
            return list(s.scalars(q))

    def count_judgments(self, annotator: str | None = None) -> int:
        with self.session() as s:
            q = select(func.count(Judgment.id)).where(Judgment.status == "submitted")
            if annotator:
                q = q.where(Judgment.annotator == annotator)
            return int(s.scalar(q) or 0)

    def all_responses(self) -> dict[str, Response]:
        with self.session() as s:
            return {r.id: r for r in s.scalars(select(Response))}

    def all_comparisons(self) -> dict[str, Comparison]:
        with self.session() as s:
            return {c.id: c for c in s.scalars(select(Comparison))}

    def queue_items(self) -> Sequence[QueueItem]:
        with self.session() as s:
            return list(s.scalars(select(QueueItem).order_by(QueueItem.created_at)))


def open_store(settings: Settings) -> PreferenceStore:
    return PreferenceStore(settings.prefs_db_url)
