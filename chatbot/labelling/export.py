"""Turn stored judgments into training and analysis files.

The formats are the registry `FORMATS`: each one's name, a line saying what its rows are (the CLI's
`--format` help takes it from there; the Results tab and the downloads offer the same names) and the
function that makes them, whose docstring says the rest. The dpo and reward rows are conversational: `prompt`
is the list of messages the model saw (system, exemplar turn, the numbered passages and the
question), and both answers were written from that very prompt: a pair whose answers saw different
prompts (another persona, other passages, an abstention) would teach the model to prefer text it was
never asked for, so it goes to `mixed-prompt` instead.

A changed vote ("Change my vote") counts as the annotator's vote in every format; the one it replaced
does not. Such votes carry `after_reveal` (the names were on screen) in `battles` and `jsonl`.

The dpo, reward and kto rows are aggregated per pair (one comparison, its two responses) over all the
annotators who judged it, so two opposite votes never become two contradictory rows: `majority` counts
one vote per annotator, `strength` weighs A/B votes by their grade (3, 2, 1, 0.5 from significantly to
negligibly; a tie or both-bad vote weighs 1). The outcome with the highest score wins; a shared top
score drops the pair. `select_pairs` / `select_examples` return the same selection without writing
files (the trainer uses them).

Every judgment a format cannot use is listed in `excluded` with the reason: nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import MedchatError
from prompts import rebuild_prompt

if TYPE_CHECKING:
    from chatbot.labelling.store.models import Comparison, Judgment, Response
    from chatbot.labelling.store.prefs import PreferenceStore

log = logging.getLogger(__name__)

AGGREGATIONS = ("majority", "strength")
# Llama 2's "small" margins for significantly better, better, slightly better, negligibly better/unsure
SMALL_MARGIN = {"significantly": 1.0, "better": 2 / 3, "slightly": 1 / 3, "negligibly": 0.0}
# vote weights of the `strength` aggregation; a tie or both-bad vote weighs TIE_WEIGHT
STRENGTH_WEIGHT = {"significantly": 3.0, "better": 2.0, "slightly": 1.0, "negligibly": 0.5}
TIE_WEIGHT = 1.0

Messages = list[dict[str, str]]


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
    def outcome(self) -> str:
        """The winning response id, or `tie` / `both_bad`."""
        return self.judgment.winner_response_id or self.judgment.choice

    @property
    def unsafe(self) -> set[str]:
        """The response ids this judgment called unsafe."""
        j = self.judgment
        if j.safety_bin == "both_unsafe":
            return {self.left.id, self.right.id}
        return {j.unsafe_response_id} if j.safety_bin == "one_unsafe" and j.unsafe_response_id else set()


def records(store: PreferenceStore, *, status: str | None = None) -> Iterator[Record]:
    responses = store.all_responses()
    comparisons = store.all_comparisons()
    for j in store.judgments(status=status):
        yield Record(
            j, comparisons[j.comparison_id], responses[j.left_response_id], responses[j.right_response_id]
        )


# -- the prompt the model saw ------------------------------------------------------------------


def response_prompt(r: Response) -> Messages | None:
    """The messages the model was given to write `r`: stored with it, or rebuilt from its stored answer
    (passages, query, prompt parts) when the rebuilt prompt has the stored hash. None for text the
    model did not write (emergency guidance, the abstention, gold answers)."""
    stored = getattr(r, "prompt_messages", None)
    if stored:
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in stored]
    answer = r.answer or {}
    if answer.get("emergency") or answer.get("abstained"):
        return None
    sources = sorted(answer.get("sources") or [], key=lambda s: s.get("n", 0))
    return rebuild_prompt(
        str(answer.get("query") or answer.get("question") or ""),
        [str(s.get("text", "")) for s in sources],
        dict(answer.get("variant") or {}),
        r.prompt_hash,
    )


# -- selection and aggregation -----------------------------------------------------------------


@dataclass(frozen=True)
class SelectOptions:
    """How judgments become training rows."""

    aggregate: str = "majority"
    """`majority` (one vote per annotator) or `strength` (votes weighted by their grade)."""
    same_prompt_only: bool = False
    """Kept for callers of the earlier API: every dpo/reward pair is a one-prompt pair now, whatever
    this says (a pair whose answers saw different prompts goes to the `mixed-prompt` export)."""
    include_after_reveal: bool = False
    """Kept for callers of the earlier API: a changed vote always counts now, as the annotator's vote.
    Leaving it out left the pair with no vote of that annotator at all (the one it replaced is
    superseded), which is what issue 27 found."""

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATIONS:
            raise ExportError(f"unknown aggregation {self.aggregate!r}: use one of {', '.join(AGGREGATIONS)}")


@dataclass
class Pair:
    """One comparison's aggregated preference: a prompt, a chosen and a rejected answer."""

    comparison_id: str
    question: str
    prompt: Messages
    """The prompt both answers were written from."""
    prompt_from: str
    """`chosen` (kept for readers of older files, where it could be `rejected`)."""
    same_prompt: bool
    """Always True: a pair whose answers saw different prompts is a `MixedPromptPair`."""
    chosen: Response
    rejected: Response
    margin: float
    votes: dict[str, float]
    """Score of each outcome: chosen, rejected, tie, both_bad."""
    judgment_ids: list[str]
    annotators: list[str]


@dataclass
class MixedPromptPair:
    """An aggregated preference between answers written from different prompts: not a dpo/reward row."""

    comparison_id: str
    question: str
    chosen: Response
    rejected: Response
    chosen_prompt: Messages | None
    """None: the model did not write this text from a prompt (the abstention, emergency guidance)."""
    rejected_prompt: Messages | None
    difference: str
    """How the two prompts differ, in words."""
    margin: float
    votes: dict[str, float]
    judgment_ids: list[str]
    annotators: list[str]


@dataclass
class Example:
    """One answer labelled desirable or not (KTO), from its pair's aggregated verdict."""

    comparison_id: str
    question: str
    prompt: Messages
    prompt_from: str
    """`own`, or `other` when the answer had no prompt (an abstention) and its partner's is used."""
    completion: Response
    label: bool
    votes: dict[str, float]
    judgment_ids: list[str]
    annotators: list[str]


@dataclass
class Selection:
    """What a selection kept and, per judgment, what it left out and why."""

    options: SelectOptions
    pairs: list[Pair] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    mixed_prompt: list[MixedPromptPair] = field(default_factory=list)
    """Pairs left out of `pairs` because their answers saw different prompts (also in `excluded`)."""
    excluded: list[dict[str, str]] = field(default_factory=list)
    """One entry per judgment left out: judgment_id, comparison_id, annotator, kind, reason."""

    def exclude(self, rec: Record, kind: str, reason: str) -> None:
        j = rec.judgment
        self.excluded.append(
            {
                "judgment_id": j.id,
                "comparison_id": rec.comparison.id,
                "annotator": j.annotator,
                "kind": kind,
                "reason": reason,
            }
        )

    @property
    def counts(self) -> dict[str, int]:
        """Kind of exclusion -> number of judgments left out for it."""
        return dict(Counter(e["kind"] for e in self.excluded))

    @property
    def used_judgments(self) -> list[str]:
        items: list[Pair] | list[Example] = self.pairs or self.examples
        return sorted({j for x in items for j in x.judgment_ids})

    def summary(self) -> str:
        kept = f"{len(self.pairs)} pairs" if self.pairs or not self.examples else f"{len(self.examples)} rows"
        used = len(self.used_judgments)
        left = "; ".join(f"{k}: {n}" for k, n in sorted(self.counts.items())) or "none"
        mixed = f" ({len(self.mixed_prompt)} pairs in the mixed-prompt export)" if self.mixed_prompt else ""
        return (
            f"{kept} from {used} judgments ({self.options.aggregate} per pair); "
            f"judgments left out: {left}{mixed}"
        )


def _judgment_exclusion(rec: Record) -> tuple[str, str] | None:
    # a vote changed after the reveal is the annotator's vote: it counts (it carries `after_reveal`)
    j = rec.judgment
    if j.status != "submitted":
        return "superseded", "superseded by a later judgment of the same annotator: that one counts"
    if rec.comparison.is_gold:
        return "gold", "gold item: a quality check of the annotator, not model output"
    for r in (rec.left, rec.right):
        if not r.finished or r.error:
            return "unfinished", f"response {r.id} did not finish ({r.error or 'stream cut'})"
        if not r.text.strip():
            return "empty", f"response {r.id} is empty"
        named = [n for n in (r.variant, r.model) if n and len(n) > 3 and n.lower() in r.text.lower()]
        if named:
            return (
                "names its variant",
                f"response {r.id} names its own variant or model ({named[0]}): the vote was not blind",
            )
    if j.safety_bin == "one_unsafe" and j.winner_response_id and j.unsafe_response_id == j.winner_response_id:
        return (
            "unsafe preferred",
            "the preferred response was judged unsafe and the other safe: contradictory, never used "
            "as chosen/rejected",
        )
    return None


@dataclass
class _Group:
    """The counted votes on one comparison."""

    recs: list[Record]
    outcome: str | None
    scores: dict[str, float]

    @property
    def first(self) -> Record:
        return self.recs[0]

    @property
    def unsafe(self) -> set[str]:
        return set().union(*(r.unsafe for r in self.recs))

    @property
    def judgment_ids(self) -> list[str]:
        return [r.judgment.id for r in self.recs]

    @property
    def annotators(self) -> list[str]:
        return [r.judgment.annotator for r in self.recs]


def _weight(rec: Record, aggregate: str) -> float:
    if aggregate == "majority":
        return 1.0
    if rec.judgment.winner_response_id:
        return STRENGTH_WEIGHT.get(rec.judgment.strength, 1.0)
    return TIE_WEIGHT


def _groups(store: PreferenceStore, options: SelectOptions, sel: Selection) -> list[_Group]:
    by_pair: dict[str, list[Record]] = defaultdict(list)
    for rec in records(store):
        why = _judgment_exclusion(rec)
        if why:
            sel.exclude(rec, *why)
        else:
            by_pair[rec.comparison.id].append(rec)
    groups = []
    for recs in by_pair.values():
        scores: dict[str, float] = defaultdict(float)
        for rec in recs:
            scores[rec.outcome] += _weight(rec, options.aggregate)
        top = max(scores.values())
        leaders = [o for o, s in scores.items() if s == top]
        groups.append(_Group(recs, leaders[0] if len(leaders) == 1 else None, dict(scores)))
    return groups


def _drop(sel: Selection, group: _Group, kind: str, reason: str) -> None:
    for rec in group.recs:
        sel.exclude(rec, kind, reason)


def _no_majority(group: _Group) -> str:
    shown = ", ".join(f"{_outcome_name(group, o)} {s:g}" for o, s in sorted(group.scores.items()))
    return f"the annotators disagree and no outcome leads ({shown}): the pair is dropped"


def _outcome_name(group: _Group, outcome: str) -> str:
    rec = group.first
    for r in (rec.left, rec.right):
        if r.id == outcome:
            return f"response {r.id}"
    return outcome


def _votes(group: _Group, chosen: str | None, rejected: str | None) -> dict[str, float]:
    s = group.scores
    return {
        "chosen": s.get(chosen or "", 0.0),
        "rejected": s.get(rejected or "", 0.0),
        "tie": s.get("tie", 0.0),
        "both_bad": s.get("both_bad", 0.0),
    }


def select_pairs(store: PreferenceStore, options: SelectOptions | None = None) -> Selection:
    """The aggregated chosen/rejected pairs with the prompt the model saw, for DPO and reward training;
    nothing is written. Every judgment not behind a pair is in `excluded` with its reason."""
    options = options or SelectOptions()
    sel = Selection(options)
    for g in _groups(store, options, sel):
        rec = g.first
        if g.outcome is None:
            _drop(sel, g, "no majority", _no_majority(g))
            continue
        if g.outcome == "tie":
            _drop(sel, g, "tie", "tie: no preferred response (preference training needs one)")
            continue
        if g.outcome == "both_bad":
            _drop(
                sel,
                g,
                "both bad",
                "both bad: neither response is acceptable (the KTO export uses them as negatives)",
            )
            continue
        chosen, rejected = (rec.left, rec.right) if g.outcome == rec.left.id else (rec.right, rec.left)
        if chosen.id in g.unsafe and rejected.id not in g.unsafe:
            _drop(
                sel,
                g,
                "unsafe preferred",
                f"the preferred response {chosen.id} was judged unsafe and the other safe by an annotator: "
                "never used as chosen/rejected",
            )
            continue
        mine, theirs = response_prompt(chosen), response_prompt(rejected)
        lost = [r for r, m in ((chosen, mine), (rejected, theirs)) if m is None and r.prompt_hash]
        if lost:
            _drop(sel, g, "no prompt", _no_prompt(*lost))
            continue
        if mine is None and theirs is None:
            _drop(sel, g, "no prompt", "neither answer was written by the model: there is no prompt")
            continue
        winners = [r for r in g.recs if r.outcome == g.outcome]
        margin = sum(SMALL_MARGIN.get(r.judgment.strength, 0.0) for r in winners) / len(winners)
        difference = _prompt_difference(chosen, mine, rejected, theirs)
        if difference:
            sel.mixed_prompt.append(
                MixedPromptPair(
                    comparison_id=rec.comparison.id,
                    question=rec.comparison.question,
                    chosen=chosen,
                    rejected=rejected,
                    chosen_prompt=mine,
                    rejected_prompt=theirs,
                    difference=difference,
                    margin=margin,
                    votes=_votes(g, chosen.id, rejected.id),
                    judgment_ids=g.judgment_ids,
                    annotators=g.annotators,
                )
            )
            _drop(
                sel,
                g,
                "different prompts",
                f"the two answers were written from different prompts ({difference}): a dpo/reward row "
                "holds the one prompt both answers saw; the pair is in the mixed-prompt export",
            )
            continue
        assert mine is not None
        sel.pairs.append(
            Pair(
                comparison_id=rec.comparison.id,
                question=rec.comparison.question,
                prompt=mine,
                prompt_from="chosen",
                same_prompt=True,
                chosen=chosen,
                rejected=rejected,
                margin=margin,
                votes=_votes(g, chosen.id, rejected.id),
                judgment_ids=g.judgment_ids,
                annotators=g.annotators,
            )
        )
    return sel


def _prompt_difference(a: Response, mine: Messages | None, b: Response, theirs: Messages | None) -> str:
    """How the prompts two answers were written from differ, in words; "" when they are one prompt
    (the same messages, and the same hash where both answers have one).

    An extractive answer quotes the passages without calling the model: it carries the prompt its
    variant would have sent, but no model wrote it from that prompt."""
    for r, m in ((a, mine), (b, theirs)):
        if m is None:
            return f"response {r.id} was not written by the model from a prompt (an abstention or guidance)"
        if (r.answer or {}).get("grounding") == "extractive":
            return f"response {r.id} was not written by the model from a prompt (it quotes the passages)"
    assert mine is not None and theirs is not None
    if mine == theirs and (not a.prompt_hash or not b.prompt_hash or a.prompt_hash == b.prompt_hash):
        return ""
    # build_prompt's layout: the system message, the worked example turn, then passages and question
    parts = [
        name
        for name, where in (
            ("system prompt", slice(0, 1)),
            ("worked example", slice(1, -1)),
            ("passages or question", slice(-1, None)),
        )
        if mine[where] != theirs[where]
    ]
    return "they differ in the " + " and the ".join(parts) if parts else "their prompt hashes differ"


def _no_prompt(*responses: Response) -> str:
    ids = " and ".join(r.id for r in responses)
    return (
        f"the prompt of response {ids} was not stored and cannot be rebuilt to its hash (the prompt "
        "files or the passage formatting changed since): never train on a guessed prompt"
    )


def select_examples(store: PreferenceStore, options: SelectOptions | None = None) -> Selection:
    """The aggregated desirable/undesirable answers with their prompts, for KTO; nothing is written."""
    options = options or SelectOptions()
    sel = Selection(options)
    for g in _groups(store, options, sel):
        rec = g.first
        if g.outcome is None:
            _drop(sel, g, "no majority", _no_majority(g))
            continue
        if g.outcome == "tie":
            _drop(sel, g, "tie", "tie: neither response can be labelled desirable or undesirable")
            continue
        prompts = {r.id: response_prompt(r) for r in (rec.left, rec.right)}
        lost = [r for r in (rec.left, rec.right) if prompts[r.id] is None and r.prompt_hash]
        if lost:
            _drop(sel, g, "no prompt", _no_prompt(*lost))
            continue
        if not any(prompts.values()):
            _drop(sel, g, "no prompt", "neither answer was written by the model: there is no prompt")
            continue
        unsafe = g.unsafe
        for r, other in ((rec.left, rec.right), (rec.right, rec.left)):
            own = prompts[r.id]
            sel.examples.append(
                Example(
                    comparison_id=rec.comparison.id,
                    question=rec.comparison.question,
                    prompt=own if own is not None else prompts[other.id] or [],
                    prompt_from="own" if own is not None else "other",
                    completion=r,
                    label=g.outcome == r.id and r.id not in unsafe,
                    votes=_votes(g, r.id, other.id),
                    judgment_ids=g.judgment_ids,
                    annotators=g.annotators,
                )
            )
    return sel


# -- formats -----------------------------------------------------------------------------------


@dataclass
class ExportResult:
    format: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)
    selection: Selection | None = None

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(e.get("kind", e["reason"]) for e in self.excluded))

    def summary(self) -> str:
        if self.selection is not None:
            return self.selection.summary()
        return f"{len(self.rows)} rows; {len(self.excluded)} judgments excluded"


def _utc(dt: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were stored in UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def _pair_row(p: Pair, fmt: str, aggregate: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "prompt": p.prompt,
        "chosen": _assistant(p.chosen.text),
        "rejected": _assistant(p.rejected.text),
    }
    if fmt == "reward":
        row["margin"] = p.margin
    return {
        **row,
        "question": p.question,
        "comparison_id": p.comparison_id,
        "chosen_response_id": p.chosen.id,
        "rejected_response_id": p.rejected.id,
        "chosen_variant": p.chosen.variant,
        "rejected_variant": p.rejected.variant,
        "prompt_from": p.prompt_from,
        "same_prompt": p.same_prompt,
        "aggregate": aggregate,
        "votes": p.votes,
        "judgment_ids": p.judgment_ids,
        "annotators": p.annotators,
    }


def _mixed_prompt_row(m: MixedPromptPair, aggregate: str) -> dict[str, Any]:
    return {
        "question": m.question,
        "comparison_id": m.comparison_id,
        "chosen_prompt": m.chosen_prompt,
        "chosen": _assistant(m.chosen.text),
        "rejected_prompt": m.rejected_prompt,
        "rejected": _assistant(m.rejected.text),
        "difference": m.difference,
        "margin": m.margin,
        "chosen_response_id": m.chosen.id,
        "rejected_response_id": m.rejected.id,
        "chosen_variant": m.chosen.variant,
        "rejected_variant": m.rejected.variant,
        "chosen_prompt_hash": m.chosen.prompt_hash,
        "rejected_prompt_hash": m.rejected.prompt_hash,
        "aggregate": aggregate,
        "votes": m.votes,
        "judgment_ids": m.judgment_ids,
        "annotators": m.annotators,
    }


def _example_row(x: Example, aggregate: str) -> dict[str, Any]:
    return {
        "prompt": x.prompt,
        "completion": _assistant(x.completion.text),
        "label": x.label,
        "question": x.question,
        "comparison_id": x.comparison_id,
        "response_id": x.completion.id,
        "variant": x.completion.variant,
        "prompt_from": x.prompt_from,
        "aggregate": aggregate,
        "votes": x.votes,
        "judgment_ids": x.judgment_ids,
        "annotators": x.annotators,
    }


def _preference_pairs(store: PreferenceStore, options: SelectOptions, *, fmt: str) -> ExportResult:
    """`dpo`: TRL preference rows, `prompt` (the messages the model saw) with `chosen` / `rejected`
    one assistant message each. `reward`: the same plus `margin`, the mean of Llama 2's "small"
    margins of the votes for the chosen answer."""
    sel = select_pairs(store, options)
    return ExportResult(fmt, [_pair_row(p, fmt, options.aggregate) for p in sel.pairs], sel.excluded, sel)


def _mixed_prompt(store: PreferenceStore, options: SelectOptions) -> ExportResult:
    """The pairs left out of dpo/reward because their answers saw different prompts, each answer with
    its own prompt (`chosen_prompt`, `rejected_prompt`; no `prompt` key, so no trainer takes the file
    for preference rows). The pairs in the dpo export are listed as excluded here."""
    sel = select_pairs(store, options)
    result = ExportResult("mixed-prompt", [_mixed_prompt_row(m, options.aggregate) for m in sel.mixed_prompt])
    result.excluded = [e for e in sel.excluded if e["kind"] != "different prompts"]
    for p in sel.pairs:
        for judgment_id, annotator in zip(p.judgment_ids, p.annotators, strict=True):
            result.excluded.append(
                {
                    "judgment_id": judgment_id,
                    "comparison_id": p.comparison_id,
                    "annotator": annotator,
                    "kind": "same prompt",
                    "reason": "both answers were written from one prompt: the pair is in the dpo and "
                    "reward exports",
                }
            )
    return result


def _kto(store: PreferenceStore, options: SelectOptions) -> ExportResult:
    """TRL unpaired rows: prompt / completion / label (True desirable); both bad -> two negatives."""
    sel = select_examples(store, options)
    return ExportResult("kto", [_example_row(x, options.aggregate) for x in sel.examples], sel.excluded, sel)


def _jsonl(store: PreferenceStore, options: SelectOptions) -> ExportResult:
    """Every vote as it stands, with both responses and their provenance; the votes a changed vote
    replaced travel inside its row (`earlier`), so nothing is lost and nothing is counted twice."""
    return ExportResult("jsonl", _raw_rows(list(records(store))))


def _battles(store: PreferenceStore, options: SelectOptions) -> ExportResult:
    """One arena-style row per vote (model_a = left, model_b = right, winner), whatever its safety bins."""
    result = ExportResult("battles")
    for rec in records(store):
        why = _judgment_exclusion(rec)
        if why and why[0] != "unsafe preferred":  # a battle is a vote, whatever its safety bins
            result.excluded.append(
                {
                    "judgment_id": rec.judgment.id,
                    "annotator": rec.judgment.annotator,
                    "kind": why[0],
                    "reason": why[1],
                }
            )
            continue
        result.rows.append(_battle(rec))
    return result


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, what its rows are (in a line), and the function that makes them."""

    name: str
    summary: str
    build: Callable[[PreferenceStore, SelectOptions], ExportResult]


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "dpo",
            "TRL preference rows, both answers written from the row's prompt",
            partial(_preference_pairs, fmt="dpo"),
        ),
        ExportFormat("reward", "the dpo rows with a margin", partial(_preference_pairs, fmt="reward")),
        ExportFormat("kto", "unpaired rows", _kto),
        ExportFormat("battles", "arena table", _battles),
        ExportFormat("jsonl", "raw judgments", _jsonl),
        ExportFormat(
            "mixed-prompt",
            "judged pairs whose answers saw different prompts (not training data for DPO)",
            _mixed_prompt,
        ),
    )
}
"""Every export format, by name: the CLI, the Results tab and the admin downloads offer these."""


def export(store: PreferenceStore, fmt: str, options: SelectOptions | None = None) -> ExportResult:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    return _logged(FORMATS[fmt].build(store, options or SelectOptions()))


def _logged(result: ExportResult) -> ExportResult:
    for e in result.excluded:
        log.info("export %s: excluded judgment %s: %s", result.format, e["judgment_id"], e["reason"])
    return result


def _battle(rec: Record) -> dict[str, Any]:
    j = rec.judgment
    outcome = {"A": "model_a", "B": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}[j.choice]
    return {
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
        "after_reveal": bool(getattr(j, "after_reveal", False)),
    }


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
        "prompt_messages": response_prompt(r),
        "text": r.text,
        "raw_text": getattr(r, "raw_text", None),
        "finished": r.finished,
        "error": r.error,
        "seconds": r.seconds,
    }


def _raw_rows(recs: list[Record]) -> list[dict[str, Any]]:
    """One row per vote as it stands (a submitted judgment), the votes it replaced inside it under
    `earlier`, newest first; a superseded judgment whose successor is missing gets a row of its own,
    so nothing stored is left out."""
    by_id = {rec.judgment.id: rec for rec in recs}
    nested: set[str] = set()
    rows = []
    for rec in recs:
        if rec.judgment.status != "submitted":
            continue
        earlier = []
        previous = by_id.get(rec.judgment.supersedes_id or "")
        while previous is not None and previous.judgment.id not in nested:
            nested.add(previous.judgment.id)
            earlier.append(_vote(previous))
            previous = by_id.get(previous.judgment.supersedes_id or "")
        rows.append({**_raw(rec), "earlier": earlier})
    orphans = [rec for rec in recs if rec.judgment.status != "submitted" and rec.judgment.id not in nested]
    return rows + [{**_raw(rec), "earlier": []} for rec in orphans]


def _raw(rec: Record) -> dict[str, Any]:
    j = rec.judgment
    return {
        "judgment_id": j.id,
        "comparison_id": rec.comparison.id,
        "question": rec.comparison.question,
        "is_gold": rec.comparison.is_gold,
        "queue_item_id": rec.comparison.queue_item_id,
        "left": _response_dict(rec.left),
        "right": _response_dict(rec.right),
        **_vote(rec),
    }


def _vote(rec: Record) -> dict[str, Any]:
    """The judgment's own fields: who voted what, when, with which status."""
    j = rec.judgment
    return {
        "judgment_id": j.id,
        "annotator": j.annotator,
        "role": j.role,
        "guideline_version": j.guideline_version,
        "left_response_id": rec.left.id,
        "right_response_id": rec.right.id,
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
        "harm_flag": bool(getattr(j, "harm_flag", False)),
        "after_reveal": bool(getattr(j, "after_reveal", False)),
    }


def write_export(result: ExportResult, path: Path) -> tuple[Path, Path]:
    """Write the rows as JSONL at `path` and the exclusions beside it (`<name>.excluded.jsonl`).

    The files hold clinicians' votes and rationales: they are created readable by their owner only
    (0600), each written to a temporary name first and renamed, so a reader never sees half a file."""
    excluded = path.with_name(path.stem + ".excluded.jsonl")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, rows in ((path, result.rows), (excluded, result.excluded)):
            tmp = target.with_name(target.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # an old .tmp left by a crash keeps its mode through O_CREAT
            with open(fd, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            tmp.replace(target)
    except OSError as e:
        raise ExportError(
            f"cannot write the export to {e.filename or path}: {e.strerror or e}; "
            "choose another place with -o"
        ) from e
    return path, excluded


def export_bytes(result: ExportResult) -> tuple[bytes, bytes]:
    """The two files' contents in memory (rows, exclusions), for a download that writes nothing to disk."""

    def jsonl(rows: list[dict[str, Any]]) -> bytes:
        return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows).encode()

    return jsonl(result.rows), jsonl(result.excluded)
