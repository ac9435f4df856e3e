"""Turn stored judgments into training and analysis files.

Formats:
- `dpo`: TRL preference rows, conversational: prompt / chosen / rejected as message lists.
- `reward`: the same plus `margin`, Llama 2's "small" margin for the graded strength.
- `kto`: TRL unpaired rows: prompt / completion / label (True desirable); both bad -> two negatives.
- `battles`: one arena-style row per vote (model_a = left, model_b = right, winner).
- `jsonl`: every judgment, superseded ones included, with both responses and their provenance.

Every judgment a format cannot use is listed in `excluded` with the reason: nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import MedchatError

if TYPE_CHECKING:
    from chatbot.store.models import Comparison, Judgment, Response
    from chatbot.store.prefs import PreferenceStore

log = logging.getLogger(__name__)

FORMATS = ("dpo", "reward", "kto", "battles", "jsonl")
# Llama 2's "small" margins for significantly better, better, slightly better, negligibly better/unsure
SMALL_MARGIN = {"significantly": 1.0, "better": 2 / 3, "slightly": 1 / 3, "negligibly": 0.0}


class ExportError(MedchatError):
    """An export cannot be written."""


@dataclass
class Record:
    """One judgment with its comparison and the responses as shown (left, right)."""

    judgment: Judgment
    comparison: Comparison
    left: Response
    right: Response

    @property
    def winner(self) -> Response | None:
        return {self.left.id: self.left, self.right.id: self.right}.get(
            self.judgment.winner_response_id or ""
        )

    @property
    def loser(self) -> Response | None:
        w = self.winner
        return None if w is None else (self.right if w is self.left else self.left)


@dataclass
class ExportResult:
    format: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)

    def exclude(self, rec: Record, reason: str) -> None:
        self.excluded.append(
            {"judgment_id": rec.judgment.id, "annotator": rec.judgment.annotator, "reason": reason}
        )


def records(store: PreferenceStore, *, status: str | None = None) -> Iterator[Record]:
    responses = store.all_responses()
    comparisons = store.all_comparisons()
    for j in store.judgments(status=status):
        yield Record(
            j, comparisons[j.comparison_id], responses[j.left_response_id], responses[j.right_response_id]
        )


def _common_exclusion(rec: Record) -> str | None:
    j = rec.judgment
    if j.status != "submitted":
        return "superseded by a later judgment of the same annotator"
    if rec.comparison.is_gold:
        return "gold item: a quality check of the annotator, not model output"
    for r in (rec.left, rec.right):
        if not r.finished or r.error:
            return f"response {r.id} did not finish ({r.error or 'stream cut'})"
        if not r.text.strip():
            return f"response {r.id} is empty"
        named = [n for n in (r.variant, r.model) if n and len(n) > 3 and n.lower() in r.text.lower()]
        if named:
            return f"response {r.id} names its own variant or model ({named[0]}): the vote was not blind"
    return None


def _utc(dt: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were stored in UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _messages(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def _pair_exclusion(rec: Record) -> str | None:
    j = rec.judgment
    if j.choice == "tie":
        return "tie: no preferred response (preference training needs one)"
    if j.choice == "both_bad":
        return "both bad: neither response is acceptable (the KTO export uses them as negatives)"
    if j.safety_bin == "one_unsafe" and j.unsafe_response_id == j.winner_response_id:
        return "the preferred response was judged unsafe and the other safe: never used as chosen/rejected"
    return None


def _meta(rec: Record) -> dict[str, Any]:
    j = rec.judgment
    return {
        "judgment_id": j.id,
        "comparison_id": rec.comparison.id,
        "annotator": j.annotator,
        "strength": j.strength,
        "safety_bin": j.safety_bin,
    }


def export(store: PreferenceStore, fmt: str) -> ExportResult:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    result = ExportResult(fmt)
    for rec in records(store):
        j = rec.judgment
        if fmt == "jsonl":
            result.rows.append(_raw(rec))
            continue
        reason = _common_exclusion(rec)
        if reason:
            result.exclude(rec, reason)
            continue
        prompt = _messages("user", rec.comparison.question)
        if fmt in ("dpo", "reward"):
            reason = _pair_exclusion(rec)
            if reason:
                result.exclude(rec, reason)
                continue
            winner, loser = rec.winner, rec.loser
            assert winner is not None and loser is not None
            row: dict[str, Any] = {
                "prompt": prompt,
                "chosen": _messages("assistant", winner.text),
                "rejected": _messages("assistant", loser.text),
            }
            if fmt == "reward":
                row["margin"] = SMALL_MARGIN[j.strength]
            result.rows.append({**row, **_meta(rec)})
        elif fmt == "kto":
            if j.choice == "tie":
                result.exclude(rec, "tie: neither response can be labelled desirable or undesirable")
                continue
            if j.safety_bin == "one_unsafe" and j.unsafe_response_id == j.winner_response_id:
                result.exclude(
                    rec, "the preferred response was judged unsafe and the other safe: contradictory"
                )
                continue
            unsafe = {rec.left.id, rec.right.id} if j.safety_bin == "both_unsafe" else {j.unsafe_response_id}
            for r in (rec.left, rec.right):
                good = j.choice != "both_bad" and r.id == j.winner_response_id and r.id not in unsafe
                result.rows.append(
                    {
                        "prompt": prompt,
                        "completion": _messages("assistant", r.text),
                        "label": good,
                        "response_id": r.id,
                        **_meta(rec),
                    }
                )
        elif fmt == "battles":
            outcome = {"A": "model_a", "B": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}[j.choice]
            result.rows.append(
                {
                    "question_id": rec.comparison.id,
                    "judgment_id": j.id,
                    "judge": j.annotator,
                    "model_a": rec.left.variant,
                    "model_b": rec.right.variant,
                    "winner": outcome,
                    "strength": j.strength,
                    "safety_bin": j.safety_bin,
                    "tstamp": _utc(j.submitted_at).timestamp(),
                    "anony": True,
                }
            )
    for e in result.excluded:
        log.info("export %s: excluded judgment %s: %s", fmt, e["judgment_id"], e["reason"])
    return result


def _response_dict(r: Response) -> dict[str, Any]:
    return {
        "id": r.id,
        "slot": r.slot,
        "variant": r.variant,
        "variant_config": r.variant_config,
        "prompt_parts": r.prompt_parts,
        "model": r.model,
        "quantization": r.quantization,
        "generation": r.generation,
        "seed": r.seed,
        "k": r.k,
        "chunk_ids": r.chunk_ids,
        "prompt_hash": r.prompt_hash,
        "text": r.text,
        "finished": r.finished,
        "error": r.error,
        "seconds": r.seconds,
    }


def _raw(rec: Record) -> dict[str, Any]:
    j = rec.judgment
    return {
        "judgment_id": j.id,
        "comparison_id": rec.comparison.id,
        "question": rec.comparison.question,
        "is_gold": rec.comparison.is_gold,
        "queue_item_id": rec.comparison.queue_item_id,
        "annotator": j.annotator,
        "role": j.role,
        "guideline_version": j.guideline_version,
        "left": _response_dict(rec.left),
        "right": _response_dict(rec.right),
        "choice": j.choice,
        "winner_response_id": j.winner_response_id,
        "strength": j.strength,
        "safety_bin": j.safety_bin,
        "unsafe_response_id": j.unsafe_response_id,
        "axes": j.axes,
        "rationale": j.rationale,
        "served_at": _utc(j.served_at).isoformat() if j.served_at else None,
        "submitted_at": _utc(j.submitted_at).isoformat(),
        "time_on_task_s": j.time_on_task_s,
        "status": j.status,
        "supersedes_id": j.supersedes_id,
    }


def write_export(result: ExportResult, path: Path) -> tuple[Path, Path]:
    """Write the rows as JSONL at `path` and the exclusions beside it (`<name>.excluded.jsonl`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    excluded = path.with_name(path.stem + ".excluded.jsonl")
    for target, rows in ((path, result.rows), (excluded, result.excluded)):
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        tmp.replace(target)
    return path, excluded
