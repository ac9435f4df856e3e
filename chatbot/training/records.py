"""`training_runs` rows: every run, linked to the judgments it learned from and was scored on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from chatbot.labelling.store.models import TrainingRun, utcnow

if TYPE_CHECKING:
    from chatbot.labelling.store.prefs import PreferenceStore


def start(store: PreferenceStore, **fields: Any) -> str:
    """A `running` record (a resumed run reuses its record); returns its id."""
    with store.session() as s, s.begin():
        row = s.scalars(select(TrainingRun).where(TrainingRun.name == fields["name"])).first()
        if row is None:
            row = TrainingRun(**fields)
            s.add(row)
        else:
            for key, value in fields.items():
                setattr(row, key, value)
            row.status, row.error, row.finished_at = "running", None, None
        s.flush()
        return row.id


def finish(store: PreferenceStore, run_id: str, *, status: str, **fields: Any) -> None:
    with store.session() as s, s.begin():
        row = s.get(TrainingRun, run_id)
        if row is None:
            return
        row.status = status
        row.finished_at = utcnow()
        for key, value in fields.items():
            setattr(row, key, value)


def runs(store: PreferenceStore) -> list[TrainingRun]:
    with store.session() as s:
        return list(s.scalars(select(TrainingRun).order_by(TrainingRun.started_at)))
