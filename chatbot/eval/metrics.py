"""Scores: ranking metrics, classification metrics, latency percentiles and answer parsing.

Ranking metrics take the ranked list of gold-document ids that the retrieved
chunks belong to (`None` for a chunk of no gold document, repeats allowed,
since several chunks may come from one document) and the set of gold ids.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Ranked = Sequence[str | None]


def _first_hits(ranked: Ranked, gold: set[str], k: int) -> list[int]:
    """1-based ranks at which each gold id first appears within the top k."""
    seen: set[str] = set()
    ranks = []
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc is not None and doc in gold and doc not in seen:
            seen.add(doc)
            ranks.append(rank)
    return ranks


def recall_at_k(ranked: Ranked, gold: set[str], k: int) -> float:
    """Share of the gold ids that some chunk in the top k belongs to."""
    if not gold:
        return 0.0
    return len(_first_hits(ranked, gold, k)) / len(gold)


def hit_at_k(ranked: Ranked, gold: set[str], k: int) -> float:
    return 1.0 if _first_hits(ranked, gold, k) else 0.0


def reciprocal_rank(ranked: Ranked, gold: set[str], k: int | None = None) -> float:
    hits = _first_hits(ranked, gold, k or len(ranked))
    return 1.0 / hits[0] if hits else 0.0


def ndcg_at_k(ranked: Ranked, gold: set[str], k: int) -> float:
    """Binary-relevance nDCG: each gold id counts once, at its first chunk."""
    if not gold:
        return 0.0
    dcg = sum(1.0 / math.log2(r + 1) for r in _first_hits(ranked, gold, k))
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(gold), k) + 1))
    return dcg / ideal


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(timings: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    return {
        step: {
            "p50_s": round(percentile(v, 50), 4),
            "p95_s": round(percentile(v, 95), 4),
            "mean_s": round(mean(v), 4),
            "n": len(v),
        }
        for step, v in timings.items()
        if v
    }


def accuracy(gold: Sequence[str], predicted: Sequence[str | None]) -> float:
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]) -> float:
    """Mean F1 over `labels`; an unparsed prediction counts as wrong for every label."""
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted, strict=True))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return mean(scores)


def majority_baseline(gold: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 of always answering the most frequent gold label."""
    if not gold:
        return {"label": None, "accuracy": 0.0, "macro_f1": 0.0}
    label = Counter(gold).most_common(1)[0][0]
    always = [label] * len(gold)
    return {
        "label": label,
        "accuracy": accuracy(gold, always),
        "macro_f1": macro_f1(gold, always, labels),
    }


_YNM = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)
_YNM_LEAD = re.compile(
    r"\b(?:answer|decision|verdict|conclusion)\s*(?:is|:)?\s*[\"'*(\[]*\s*(yes|no|maybe)\b", re.IGNORECASE
)
_UNCERTAIN = re.compile(
    r"\b(unclear|uncertain|not (?:clear|certain|known)|inconclusive|possibly|perhaps|may or may not)\b",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(r"^\W*(?:not|none|neither|false|incorrect)\b", re.IGNORECASE)
_POSITIVE = re.compile(r"^\W*(?:true|correct|indeed|certainly|definitely)\b", re.IGNORECASE)


def parse_yes_no_maybe(text: str) -> str | None:
    """The yes/no/maybe decision a free-text answer gives, or None when it gives none.

    An explicit "answer: X" wins; then the first of the three words; then
    hedging words read as maybe and a leading negation as no.
    """
    text = text or ""
    lead = _YNM_LEAD.search(text)
    if lead:
        return lead.group(1).lower()
    first = _YNM.search(text)
    if first:
        return first.group(1).lower()
    if _UNCERTAIN.search(text):
        return "maybe"
    if _NEGATIVE.search(text):
        return "no"
    if _POSITIVE.search(text):
        return "yes"
    return None


def parse_choice(text: str, options: Mapping[str, str]) -> str | None:
    """The option letter a free-text answer picks, or None.

    Tried in order: "answer is (B)" / "answer: B" phrasing; a letter standing
    alone at the very start ("B", "B.", "(B)", "**B**"); "option B"; one
    letter alone in brackets anywhere; then the one option whose text the
    answer quotes (the longest, when several are quoted).
    """
    letters = [str(x).upper() for x in options]
    if not text or not letters:
        return None
    group = "".join(re.escape(x) for x in letters)
    patterns = [
        rf"(?i:\banswer\s*(?:is|would be|:)?\s*(?:option\s*)?)[\"'*(\[]*\s*([{group}])(?![\w'-])",
        rf"^\W*(?:option\s*)?([{group}])(?:[.):\]*]|\s*$|\s+[-–:])",
        rf"(?i:\boption)\s*[\"'*(\[]*([{group}])(?![\w'-])",
        rf"[(\[]([{group}])[)\]]",
    ]
    for pattern in patterns:
        match = re.search(pattern, text.strip())
        if match:
            return match.group(1).upper()
    lowered = " ".join(text.lower().split())
    quoted = [
        (len(v), str(k).upper())
        for k, v in options.items()
        if str(v).strip() and " ".join(str(v).lower().split()) in lowered
    ]
    if quoted:
        quoted.sort(reverse=True)
        if len(quoted) == 1 or quoted[0][0] > quoted[1][0]:
            return quoted[0][1]
    return None
