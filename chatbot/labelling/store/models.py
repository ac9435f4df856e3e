"""The tables of the judgments database (SQLAlchemy 2 declarative models).

Ids are random UUID strings so rows from several deployments can be merged.
Responses keep their full provenance; a judgment is never updated in place:
an edit inserts a new row and marks the old one `superseded`. The partial
unique index lets at most one `submitted` judgment exist per (comparison,
annotator), enforced by the database itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: DateTime(timezone=True),
    }


class QueueItem(Base):
    """A question an admin loaded for annotators; gold items carry a known better and worse answer."""

    __tablename__ = "queue_items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    gold_better: Mapped[str | None] = mapped_column(Text, nullable=True)
    gold_worse: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_gold(self) -> bool:
        return self.gold_better is not None


class Comparison(Base):
    """One question and two responses (slots `a` and `b`); shared by all who judge it."""

    __tablename__ = "comparisons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    question: Mapped[str] = mapped_column(Text)
    # unique: two annotators racing for the same queued item end up judging one pair
    queue_item_id: Mapped[str | None] = mapped_column(
        ForeignKey("queue_items.id"), unique=True, nullable=True, default=None
    )
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Response(Base):
    """One answer with everything needed to reproduce it."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("comparison_id", "slot"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    comparison_id: Mapped[str] = mapped_column(ForeignKey("comparisons.id"), index=True)
    slot: Mapped[str] = mapped_column(String(1))
    variant: Mapped[str] = mapped_column(String(200))
    variant_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prompt_parts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model: Mapped[str] = mapped_column(String(300), default="")
    quantization: Mapped[str] = mapped_column(String(50), default="")
    generation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    k: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_ids: Mapped[list[str]] = mapped_column(default=list)
    prompt_hash: Mapped[str] = mapped_column(String(100), default="")
    prompt_messages: Mapped[list[dict[str, str]]] = mapped_column(JSON, nullable=True, default=list)
    """The chat messages the model was given: system, exemplar turn, passages and question (m004)."""
    text: Mapped[str] = mapped_column(Text, default="")
    """What the annotator was shown (and judged); training rows use it."""
    raw_text: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    """What the model wrote, before the grounding check made `text` of it (m005); NULL for rows stored
    before m005, whose model text was not kept apart."""
    answer: Mapped[dict[str, Any]] = mapped_column(default=dict)
    finished: Mapped[bool] = mapped_column(Boolean, default=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assignment(Base):
    """A comparison served to one annotator, with the side each response was shown on."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("comparison_id", "annotator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    comparison_id: Mapped[str] = mapped_column(ForeignKey("comparisons.id"), index=True)
    annotator: Mapped[str] = mapped_column(String(200), index=True)
    left_slot: Mapped[str] = mapped_column(String(1))
    served_at: Mapped[datetime] = mapped_column(default=utcnow)
    skipped_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    """Set when the annotator skipped the pair: it goes back to the pool for others (m003)."""


class Judgment(Base):
    """One annotator's verdict on one comparison. `choice` is as shown: A = left, B = right."""

    __tablename__ = "judgments"
    __table_args__ = (
        Index(
            "one_submitted_judgment",
            "comparison_id",
            "annotator",
            unique=True,
            sqlite_where=sql_text("status = 'submitted'"),
            postgresql_where=sql_text("status = 'submitted'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    comparison_id: Mapped[str] = mapped_column(ForeignKey("comparisons.id"), index=True)
    annotator: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(100), default="")
    guideline_version: Mapped[str] = mapped_column(String(100))
    left_response_id: Mapped[str] = mapped_column(ForeignKey("responses.id"))
    right_response_id: Mapped[str] = mapped_column(ForeignKey("responses.id"))
    choice: Mapped[str] = mapped_column(String(10))
    winner_response_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    strength: Mapped[str] = mapped_column(String(20))
    safety_bin: Mapped[str] = mapped_column(String(20))
    unsafe_response_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    axes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Med-PaLM clinician axes per response id (optional)."""
    rationale: Mapped[str] = mapped_column(Text, default="")
    served_at: Mapped[datetime | None] = mapped_column(nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    time_on_task_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(12), default="submitted")
    supersedes_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    harm_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    """The annotator said an answer could cause harm (m003)."""
    after_reveal: Mapped[bool] = mapped_column(Boolean, default=False)
    """Submitted after the variant names were shown (a changed vote); exports leave these out (m003)."""


class TrainingRun(Base):
    """One `medchat train` run, linked to the judgments it learned from and the ones it was scored on."""

    __tablename__ = "training_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    """dpo, kto or reward."""
    status: Mapped[str] = mapped_column(String(20), default="running")
    """running, finished or failed."""
    base_model: Mapped[str] = mapped_column(Text)
    base_hash: Mapped[str] = mapped_column(String(100), default="")
    output_dir: Mapped[str] = mapped_column(Text)
    train_judgment_ids: Mapped[list[str]] = mapped_column(default=list)
    eval_judgment_ids: Mapped[list[str]] = mapped_column(default=list)
    guideline_versions: Mapped[list[str]] = mapped_column(default=list)
    excluded: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Reason -> number of judgments the selection left out."""
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    variant: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
