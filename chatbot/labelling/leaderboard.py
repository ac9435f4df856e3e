"""Results of the labelling: Bradley-Terry ratings with bootstrap intervals, annotator statistics, agreement.

Bradley-Terry is fitted by Newton's method on the logistic likelihood (ties count half a win each,
"both bad" counts as a tie), with a small ridge so an unbeaten variant keeps a finite rating.
Ratings are on the Elo scale (400 points = 10:1 odds) around 1000. Unlike online Elo the fit does
not depend on the order of the votes.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbot.labelling.export import Record
    from chatbot.labelling.store.prefs import PreferenceStore

SCALE = 400 / math.log(10)


@dataclass
class Rating:
    variant: str
    rating: float
    lower: float
    upper: float
    battles: int
    wins: float


def fit_bradley_terry(battles: Sequence[tuple[str, str, float]], *, ridge: float = 0.01) -> dict[str, float]:
    """battles: (model_a, model_b, score of a: 1 win, 0.5 tie, 0 loss) -> Elo-scale ratings."""
    import numpy as np

    names = sorted({m for a, b, _ in battles for m in (a, b)})
    if not names:
        return {}
    index = {n: i for i, n in enumerate(names)}
    ia = np.array([index[a] for a, _, _ in battles])
    ib = np.array([index[b] for _, b, _ in battles])
    y = np.array([s for _, _, s in battles], dtype=float)
    theta = np.zeros(len(names))
    for _ in range(50):
        p = 1 / (1 + np.exp(-(theta[ia] - theta[ib])))
        grad = -ridge * theta
        np.add.at(grad, ia, y - p)
        np.add.at(grad, ib, p - y)
        w = p * (1 - p)
        hess = -ridge * np.eye(len(names))
        np.add.at(hess, (ia, ia), -w)
        np.add.at(hess, (ib, ib), -w)
        np.add.at(hess, (ia, ib), w)
        np.add.at(hess, (ib, ia), w)
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    theta -= theta.mean()
    return {n: 1000 + SCALE * float(theta[i]) for n, i in index.items()}


def leaderboard(
    battles: Sequence[tuple[str, str, float]], *, rounds: int = 200, seed: int = 0
) -> list[Rating]:
    """Ratings with 95% bootstrap intervals (battles resampled with replacement)."""
    import numpy as np

    point = fit_bradley_terry(battles)
    if not point:
        return []
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        pick = rng.integers(0, len(battles), len(battles))
        for name, r in fit_bradley_terry([battles[i] for i in pick]).items():
            samples[name].append(r)
    counts: dict[str, int] = defaultdict(int)
    wins: dict[str, float] = defaultdict(float)
    for a, b, s in battles:
        counts[a] += 1
        counts[b] += 1
        wins[a] += s
        wins[b] += 1 - s
    out = []
    for name, r in point.items():
        lo, hi = np.percentile(samples[name], [2.5, 97.5]) if samples[name] else (r, r)
        out.append(Rating(name, r, float(lo), float(hi), counts[name], wins[name]))
    return sorted(out, key=lambda x: -x.rating)


def wilson_interval(wins: float, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a win rate: unlike rate +/- 1.96 SE it stays inside 0..1 and is not
    zero-width at 0 or 1 wins, which is where a handful of battles usually sits."""
    if n <= 0:
        return 0.0, 1.0
    p = min(1.0, max(0.0, wins / n))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def kappa_note(kappa: float | None) -> str:
    """One line that says what a kappa means to someone who does not know the scale; a negative one
    looks like a bug otherwise."""
    if kappa is None:
        return ""
    if kappa < 0:
        return "agreement below chance: the annotators split more often than random votes would"
    if kappa < 0.2:
        return "slight agreement"
    if kappa < 0.4:
        return "fair agreement"
    if kappa < 0.6:
        return "moderate agreement"
    return "substantial agreement" if kappa < 0.8 else "almost perfect agreement"


def cohen_kappa(x: Sequence[str], y: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters on the same items; None when undefined."""
    n = len(x)
    if n == 0 or n != len(y):
        return None
    observed = sum(a == b for a, b in zip(x, y, strict=True)) / n
    cats = set(x) | set(y)
    expected = sum((x.count(c) / n) * (y.count(c) / n) for c in cats)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa over items each rated by two or more raters (numbers of raters may differ)."""
    items = [i for i in items if len(i) >= 2]
    if not items:
        return None
    cats = sorted({c for i in items for c in i})
    total = sum(len(i) for i in items)
    p_j = {c: sum(i.count(c) for i in items) / total for c in cats}
    p_i = [(sum(i.count(c) ** 2 for c in cats) - len(i)) / (len(i) * (len(i) - 1)) for i in items]
    p_bar = statistics.fmean(p_i)
    p_e = sum(v * v for v in p_j.values())
    if p_e >= 1:
        return None
    return (p_bar - p_e) / (1 - p_e)


def canonical(rec: Record) -> str:
    """The vote in the comparison's own terms (slot a/b), independent of the side it was shown on."""
    j = rec.judgment
    if j.choice in ("tie", "both_bad"):
        return j.choice
    winner = rec.winner
    assert winner is not None
    return winner.slot


def battle(rec: Record) -> tuple[str, str, float]:
    score = {"A": 1.0, "B": 0.0}.get(rec.judgment.choice, 0.5)
    return rec.left.variant, rec.right.variant, score


@dataclass
class Results:
    annotators: list[dict[str, Any]]
    ratings: list[Rating]
    cohen: list[dict[str, Any]]
    fleiss: float | None
    overlapping_items: int
    total: int


def results(store: PreferenceStore, *, rounds: int = 200) -> Results:
    from chatbot.labelling.export import records

    recs = list(records(store, status="submitted"))
    by_annotator: dict[str, list[Record]] = defaultdict(list)
    for r in recs:
        by_annotator[r.judgment.annotator].append(r)
    annotators = []
    for name, rs in sorted(by_annotator.items()):
        sided = [r for r in rs if r.judgment.choice in ("A", "B")]
        gold = [r for r in rs if r.comparison.is_gold]
        times = [r.judgment.time_on_task_s for r in rs if r.judgment.time_on_task_s is not None]
        annotators.append(
            {
                "annotator": name,
                "role": rs[0].judgment.role,
                "judgments": len(rs),
                "left_rate": round(sum(r.judgment.choice == "A" for r in sided) / len(sided), 3)
                if sided
                else None,
                "tie_rate": round(sum(r.judgment.choice == "tie" for r in rs) / len(rs), 3),
                "both_bad_rate": round(sum(r.judgment.choice == "both_bad" for r in rs) / len(rs), 3),
                "gold_items": len(gold),
                "gold_accuracy": (
                    round(sum((r.winner is not None and r.winner.slot == "a") for r in gold) / len(gold), 3)
                    if gold
                    else None
                ),
                "median_time_s": round(statistics.median(times), 1) if times else None,
            }
        )
    model_recs = [r for r in recs if not r.comparison.is_gold]
    ratings = leaderboard([battle(r) for r in model_recs], rounds=rounds)
    per_item: dict[str, dict[str, str]] = defaultdict(dict)
    for r in model_recs:
        per_item[r.comparison.id][r.judgment.annotator] = canonical(r)
    shared = {c: v for c, v in per_item.items() if len(v) >= 2}
    cohen = []
    for x, y in combinations(sorted(by_annotator), 2):
        both = [(v[x], v[y]) for v in shared.values() if x in v and y in v]
        if len(both) >= 2:
            k = cohen_kappa([a for a, _ in both], [b for _, b in both])
            cohen.append(
                {"pair": f"{x} / {y}", "items": len(both), "kappa": None if k is None else round(k, 3)}
            )
    fleiss = fleiss_kappa([list(v.values()) for v in shared.values()])
    return Results(annotators, ratings, cohen, fleiss, len(shared), len(recs))
