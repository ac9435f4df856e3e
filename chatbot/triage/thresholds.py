"""Choosing the triage thresholds on dev, shared by both trainers (`train.py`, `tune.py`): which
messages a set of thresholds raises as emergencies, the recall, precision and margin it reaches on
each part of dev (`dataset.parts`), and the search over the grids.
"""

from __future__ import annotations

from typing import Any

TARGET_RECALL = 0.97
"""Emergency recall the threshold must reach on dev, rules and classifier together."""


TARGET_PRECISION = 0.90
"""Emergency precision the issue asks for beside the recall; the margin rule (`margin`) keeps room
above both."""


EMERGENCY_GRID = (*(round(0.95 - i / 100, 2) for i in range(91)), 0.04, 0.03, 0.02, 0.01, 0.005, 0.002, 0.001)
"""Emergency thresholds tried on dev, highest first (a fine-tuned encoder's probabilities are sharp:
the low end matters)."""


RULE_THRESHOLDS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
"""P(emergency) a rule's alarm needs from the classifier, tried on dev (0: the rules always decide)."""


ROUTINE_CAP = 0.005
"""False emergencies per routine consumer question the thresholds may give on dev (issue #28: at most
5 per 1,000), when some pair reaching the target recall allows it."""


GRADED_RECALL = 0.99
"""Emergency recall the emergency line and the graded answers together reach on each part of dev: the
graded threshold is the highest that does (`graded_threshold`)."""


def raised(pe: Any, rules: Any, th: dict[str, float], evidence: Any = None) -> Any:
    """Which messages are emergencies: P(emergency) (or the emergency score) clears its threshold,
    or a rule fires and the classifier gives at least the rules threshold. With `evidence` (per
    message: whether it shows which emergency, `evidence.py`) and an "unnamed" threshold, a message
    without evidence needs that higher threshold instead. Numpy arrays in, a boolean array out."""
    import numpy as np

    alarm = pe >= th["emergency"]
    if evidence is not None and "unnamed" in th:
        alarm = (alarm & np.asarray(evidence, dtype=bool)) | (pe >= th["unnamed"])
    return alarm | (rules & (pe >= th.get("rules", 0.0)))


def rates(flagged: Any, emergency: Any, w: Any) -> tuple[float, float]:
    """Weighted emergency recall and precision."""
    tp = float((w * (flagged & emergency)).sum())
    return tp / max(float((w * emergency).sum()), 1e-9), tp / max(float((w * flagged).sum()), 1e-9)


def lowest_recall(flagged: Any, emergency: Any, part: Any) -> float:
    """The lowest emergency recall over the parts of dev (`dataset.parts`; one part when `part` is None)."""
    import numpy as np

    part = np.zeros(len(flagged), dtype=int) if part is None else np.asarray(part)
    found = [
        float((flagged & emergency & (part == k)).sum()) / float((emergency & (part == k)).sum())
        for k in sorted(set(part.tolist()) - {-1})
        if (emergency & (part == k)).any()
    ]
    return min(found, default=0.0)


def margin(flagged: Any, emergency: Any, part: Any, recall: float, precision: float) -> float:
    """The smallest room above the target `recall` and `precision` over the parts of dev (`dataset.parts`;
    one part when `part` is None), each in standard errors of that part's estimate at the target:
    sqrt(t(1 - t) / n), n the part's emergencies for recall and its alarms for precision. Recall on
    435 hand-written emergencies has a standard error of about 0.008 at 0.97: a threshold that only
    just reaches 0.97 on dev misses it on unseen messages about half the time."""
    import numpy as np

    part = np.zeros(len(flagged), dtype=int) if part is None else np.asarray(part)
    room = []
    for k in sorted(set(part.tolist()) - {-1}):
        m = part == k
        n_e, n_f = int((emergency & m).sum()), int((flagged & m).sum())
        if not n_e:
            continue
        hit = float((flagged & emergency & m).sum())
        room.append((hit / n_e - recall) / (recall * (1 - recall) / n_e) ** 0.5)
        got = hit / n_f if n_f else 0.0
        room.append((got - precision) / (precision * (1 - precision) / max(n_f, 1)) ** 0.5)
    return min(room, default=float("-inf"))


def choose_thresholds(
    p: Any,
    y: Any,
    rules: Any,
    target: float = TARGET_RECALL,
    rule_grid: tuple[float, ...] = RULE_THRESHOLDS,
    weights: Any = None,
    part: Any = None,
    select: str = "recall",
    precision_target: float = TARGET_PRECISION,
) -> dict[str, float]:
    """Thresholds chosen on dev (messages weighted by `weights`, e.g. `dataset.balance`; in parts,
    `dataset.parts`).

    emergency, rules, `select="recall"`: for each rules threshold in `rule_grid`, the highest emergency
    threshold whose dev recall reaches `target` on every part; of those pairs, the one with the best
    weighted dev precision (on a tie, the lower rules threshold: the rules keep more say). That point
    sits exactly at the target on dev, so unseen data falls short about as often as not.
    `select="margin"`: of the pairs that reach `target` recall on every part, the one with the most
    room above both that and `precision_target` precision, counted in standard errors (`margin`); on
    a tie, the lower rules threshold, then the higher emergency threshold (when none reaches the
    target, the one with the highest recall). urgent: the threshold on
    P(urgent) / (P(urgent) + P(routine)) with the best F1 for "urgent" among the messages not raised."""
    import numpy as np

    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    emergency = y == 0
    best: tuple[tuple[Any, ...], dict[str, float]] | None = None
    if select not in ("recall", "margin"):
        raise ValueError(f"select must be 'recall' or 'margin', not {select!r}")
    for th_r in rule_grid:
        if select == "margin":
            for t in EMERGENCY_GRID:
                th = {"emergency": float(t), "rules": float(th_r)}
                flagged = raised(p[:, 0], rules, th)
                found = lowest_recall(flagged, emergency, part)
                room = margin(flagged, emergency, part, target, precision_target)
                reached = found >= target  # then the most room; short of it, the most recall
                rank: tuple[Any, ...] = (reached, round(room if reached else found, 6), -th_r, t)
                if best is None or rank > best[0]:
                    best = (rank, th)
            continue
        th = {"emergency": EMERGENCY_GRID[-1], "rules": float(th_r)}  # the lowest, when none reaches it
        for t in EMERGENCY_GRID:
            flagged = raised(p[:, 0], rules, {"emergency": float(t), "rules": th_r})
            if lowest_recall(flagged, emergency, part) >= target:
                th["emergency"] = float(t)
                break
        flagged = raised(p[:, 0], rules, th)
        recall, precision = lowest_recall(flagged, emergency, part), rates(flagged, emergency, w)[1]
        key: tuple[Any, ...] = (recall >= target, round(precision, 6))
        if best is None or key > best[0]:
            best = (key, th)
    assert best is not None
    th = best[1]
    rest = ~raised(p[:, 0], rules, th)
    grid = [float(t) for t in np.round(np.arange(0.95, 0.04, -0.01), 2)]
    th_u = max(grid, key=lambda t: (urgent_f1(p, y, rest, t, w), t))  # on a tie, the higher
    return {"emergency": th["emergency"], "rules": th["rules"], "urgent": th_u}


def choose_levels(
    p: Any,
    y: Any,
    rules: Any,
    part: Any,
    evidence: Any = None,
    target: float = TARGET_RECALL,
    precision_target: float = TARGET_PRECISION,
    routine_cap: float = ROUTINE_CAP,
    weights: Any = None,
) -> dict[str, float]:
    """Thresholds for the levels of issue #28, chosen on dev (`dataset.parts`: 0 generated, 1 hand-written,
    2 routine consumer questions; column 0 of `p` is the emergency score).

    emergency, rules, unnamed: of the triples reaching `target` recall on each part with emergencies,
    those whose false emergencies on the consumer part are at most `routine_cap` (all of them when
    none is), then the most room above the target recall and `precision_target` (`margin`); on a tie
    the fewer consumer false emergencies, the lower rules threshold, the higher emergency threshold,
    then the lower unnamed one. "unnamed" (>= emergency) is what a message without `evidence` needs;
    without `evidence` it equals "emergency". graded: `graded_threshold`. urgent: as in
    `choose_thresholds`."""
    import numpy as np

    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    emergency = y == 0
    part = np.asarray(part)
    routine = part == 2
    grid = EMERGENCY_GRID[::-1]  # lowest first
    best: tuple[tuple[Any, ...], dict[str, float]] | None = None
    for th_r in RULE_THRESHOLDS:
        for t in grid:
            for t_n in [u for u in grid if u >= t] if evidence is not None else [t]:
                th = {"emergency": float(t), "rules": float(th_r), "unnamed": float(t_n)}
                flagged = raised(p[:, 0], rules, th, evidence)
                found = lowest_recall(flagged, emergency, part)
                if found < target and best is not None and best[0][0]:
                    continue
                false = float(flagged[routine].mean()) if routine.any() else 0.0
                room = margin(flagged, emergency, part, target, precision_target)
                reached = found >= target
                rank: tuple[Any, ...] = (
                    reached,
                    reached and false <= routine_cap,
                    round(room if reached else found, 6),
                    -false,
                    -th_r,
                    t,
                    -t_n,
                )
                if best is None or rank > best[0]:
                    best = (rank, th)
    assert best is not None
    th = best[1]
    flagged = raised(p[:, 0], rules, th, evidence)
    th["graded"] = graded_threshold(p[:, 0], flagged, emergency, part, th["emergency"])
    grid_u = [float(u) for u in np.round(np.arange(0.95, 0.04, -0.01), 2)]
    th["urgent"] = max(grid_u, key=lambda u: (urgent_f1(p, y, ~flagged, u, w), u))
    return th


def graded_threshold(score: Any, flagged: Any, emergency: Any, part: Any, ceiling: float) -> float:
    """The highest threshold (at most `ceiling`, the emergency one) at which the messages raised
    (`flagged`) and those at or above it together hold `GRADED_RECALL` of the emergencies on each
    part of dev; the lowest tried when none does."""
    for t in EMERGENCY_GRID:
        if t <= ceiling and lowest_recall(flagged | (score >= t), emergency, part) >= GRADED_RECALL:
            return float(t)
    return float(EMERGENCY_GRID[-1])


def urgent_f1(p: Any, y: Any, rest: Any, threshold: float, w: Any) -> float:
    """Weighted F1 of "urgent" among the messages `rest` (not raised as emergencies), deciding urgent
    where P(urgent) / (P(urgent) + P(routine)) reaches `threshold`."""
    import numpy as np

    score = p[:, 1] / np.maximum(p[:, 1] + p[:, 2], 1e-9)
    said, want = rest & (score >= threshold), rest & (y == 1)
    tp = (w * (said & want)).sum()
    return float(2 * tp / max((w * said).sum() + (w * want).sum(), 1e-9))
