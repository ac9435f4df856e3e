"""Train the triage head on the train split; choose its thresholds on the dev split (`split`).

    python -m chatbot.triage.train                 # writes chatbot/triage/head.npz
    python -m chatbot.triage.train --hidden 0      # logistic regression instead of the small MLP
    python -m chatbot.triage.train --encoder tuned # fine-tune the encoder too (chatbot/triage/tune.py)

Deterministic (seeded, one thread). The test split is never read here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from chatbot.settings import bundled
from chatbot.triage.model import HEAD_FILE, LEVELS, Head

DATA = bundled("triage")
TARGET_RECALL = 0.97
"""Emergency recall the threshold must reach on dev, rules and classifier together."""
TARGET_PRECISION = 0.90
"""Emergency precision the issue asks for beside the recall; the margin rule (`margin`) keeps room
above both."""


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


CONSUMER = "consumer/"
"""The template prefix of the routine consumer questions (`data/triage/make_consumer.py`, issue #28)."""


def source(row: dict[str, Any]) -> str:
    """Where a labelled message comes from: "hand" (hand-written), "consumer" (the routine consumer
    questions) or "generated" (`make_data.py`), by its template."""
    template = str(row.get("template", ""))
    if template.startswith("hand/"):
        return "hand"
    return "consumer" if template.startswith(CONSUMER) else "generated"


def split(name: str) -> list[dict[str, Any]]:
    """The generated `name.jsonl` ("train" or "dev"), the hand-written `handwritten/name_*.jsonl` and
    the routine consumer questions `consumer_name.jsonl` (when present; their held-out part is never
    read here).

    Hand-written files are split by author (each file is one author's), so no author's messages are in
    both splits. Their rows get an `id` and a `template` (one per message) like the generated ones.
    The consumer questions are split by template and by drug (`make_consumer.py`)."""
    rows = read(DATA / f"{name}.jsonl")
    consumer = DATA / f"consumer_{name}.jsonl"
    if consumer.is_file():
        rows += read(consumer)
    for path in sorted((DATA / "handwritten").glob(f"{name}_*.jsonl")):
        for n, row in enumerate(read(path)):
            if row.get("level") not in LEVELS or not str(row.get("text", "")).strip():
                raise ValueError(f"{path} line {n + 1}: needs a text and a level in {LEVELS}")
            row.setdefault("id", f"{path.stem}-{n:05d}")
            row.setdefault("template", f"hand/{path.stem}/{n}")
            rows.append(row)
    return rows


DEV_CLOSERS = (". any home remedies?", ". what could it be?", "?? is that normal")
"""Closers of the generated dev split (`make_data.FRAMES`): no training message has them, and the
framings added in training (`tune.framings`) must not either. `bench/bench_safety.py` adds each to the
hand-written dev messages: a framing says nothing about how ill someone is, so decisions should hold."""

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


def embed(texts: list[str], cache: Path | None = None) -> Any:
    """MiniLM vectors of `texts` (float32, unit length); with `cache`, only texts not embedded
    before are sent to the encoder (the cache maps each text's hash to its vector)."""
    import hashlib

    import numpy as np

    from ingestion.embedding import PACKAGED_MINILM, SentenceTransformerEmbedder

    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    known: dict[str, Any] = {}
    if cache is not None and (cache / "vectors.npz").is_file():
        with np.load(cache / "vectors.npz") as data:
            known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    missing = sorted({t for t in texts if key(t) not in known})
    if missing:
        encoder = SentenceTransformerEmbedder(PACKAGED_MINILM, batch_size=64)
        for text, vector in zip(missing, np.asarray(encoder.embed_documents(missing)), strict=True):
            known[key(text)] = vector
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            keys = sorted(known)
            np.savez(cache / "vectors.npz", keys=np.array(keys), vectors=np.stack([known[k] for k in keys]))
    return np.stack([known[key(t)] for t in texts]).astype(np.float32)


def fit(
    x: Any,
    y: Any,
    *,
    hidden: int = 64,
    epochs: int = 300,
    weight_decay: float = 1e-3,
    seed: int = 0,
    emergency_weight: float = 2.0,
) -> list[tuple[Any, Any]]:
    """A softmax classifier (hidden=0) or a one-hidden-layer MLP, full-batch Adam in torch."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    layers: list[torch.nn.Module] = (
        [
            torch.nn.Linear(x.shape[1], hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(hidden, 3),
        ]
        if hidden
        else [torch.nn.Linear(x.shape[1], 3)]
    )
    model = torch.nn.Sequential(*layers)
    counts = np.bincount(y, minlength=3).astype(np.float32)
    weights = counts.sum() / (3 * np.maximum(counts, 1))
    weights[0] *= emergency_weight
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2 if not hidden else 3e-3, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linear]


def predict(weights: list[tuple[Any, Any]], x: Any) -> Any:
    """P(level) for each row of `x` (numpy), as the head computes it."""
    import numpy as np

    h = np.asarray(x, dtype=np.float32)
    for n, (w, b) in enumerate(weights):
        h = h @ w + b
        if n < len(weights) - 1:
            h = np.maximum(h, 0.0)
    h = h - h.max(axis=1, keepdims=True)
    e = np.exp(h)
    return e / e.sum(axis=1, keepdims=True)


def balance(rows: list[dict[str, Any]]) -> Any:
    """Weights that make the hand-written dev messages count as much, in all, as the generated ones:
    the generated dev split shares the generator with train and is easier than real writing.
    Messages in another language (a `lang` field) weigh nothing: the thresholds are for English, and
    such a message gets the emergency line whatever the classifier says."""
    import numpy as np

    hand = np.array([source(r) == "hand" for r in rows])
    foreign = np.array([bool(r.get("lang")) for r in rows])
    hand &= ~foreign
    w = np.ones(len(rows))
    if hand.any() and (~hand & ~foreign).any():
        w[hand] = (~hand & ~foreign).sum() / hand.sum()
    w[foreign] = 0.0
    return w


def rates(flagged: Any, emergency: Any, w: Any) -> tuple[float, float]:
    """Weighted emergency recall and precision."""
    tp = float((w * (flagged & emergency)).sum())
    return tp / max(float((w * emergency).sum()), 1e-9), tp / max(float((w * flagged).sum()), 1e-9)


def parts(rows: list[dict[str, Any]]) -> Any:
    """Which part of dev each message is in: 0 generated, 1 hand-written in English, 2 the routine
    consumer questions, -1 in another language (not used for thresholds). The target recall must hold
    on each part with emergencies (`lowest_recall`): with the generated part easy, a weighted average
    could reach it while the hand-written part, which reads like real messages, fell to 0.95. The
    consumer part has none: it bounds the false emergencies (`choose_thresholds`' `routine_cap`)."""
    import numpy as np

    kind = np.array([source(r) for r in rows])
    foreign = np.array([bool(r.get("lang")) for r in rows], dtype=bool)
    part = np.where(kind == "hand", 1, np.where(kind == "consumer", 2, 0))
    return np.where(foreign, -1, part)


def lowest_recall(flagged: Any, emergency: Any, part: Any) -> float:
    """The lowest emergency recall over the parts of dev (`parts`; one part when `part` is None)."""
    import numpy as np

    part = np.zeros(len(flagged), dtype=int) if part is None else np.asarray(part)
    found = [
        float((flagged & emergency & (part == k)).sum()) / float((emergency & (part == k)).sum())
        for k in sorted(set(part.tolist()) - {-1})
        if (emergency & (part == k)).any()
    ]
    return min(found, default=0.0)


def margin(flagged: Any, emergency: Any, part: Any, recall: float, precision: float) -> float:
    """The smallest room above the target `recall` and `precision` over the parts of dev (`parts`;
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
    """Thresholds chosen on dev (messages weighted by `weights`, e.g. `balance`; in parts, `parts`).

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
    """Thresholds for the levels of issue #28, chosen on dev (`parts`: 0 generated, 1 hand-written,
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


CONSUMER_EXAMPLES = 4
"""Labelled examples kept per consumer-question template: one drug or one habit of writing per
template would leave most such questions nearest an emergency (issue #28)."""


def examples(rows: list[dict[str, Any]], vectors: Any) -> tuple[Any, list[int]]:
    """The labelled examples: one per template (the first; `CONSUMER_EXAMPLES` for the consumer
    questions), as int8 vectors, for explanations and the nearest-example blend."""
    import numpy as np

    seen: dict[str, int] = {}
    keep = []
    for i, row in enumerate(rows):
        room = CONSUMER_EXAMPLES if source(row) == "consumer" else 1
        if seen.get(row["template"], 0) < room:
            seen[row["template"]] = seen.get(row["template"], 0) + 1
            keep.append(i)
    q = np.clip(np.round(vectors[keep] * 127.0), -127, 127).astype(np.int8)
    return q, keep


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--encoder" in argv or any(a.startswith("--encoder=") for a in argv):
        pick = argparse.ArgumentParser(add_help=False)
        pick.add_argument("--encoder", choices=("frozen", "tuned"), default="frozen")
        known, argv = pick.parse_known_args(argv)
        if known.encoder == "tuned":
            from chatbot.triage.tune import main as tune

            tune(argv)
            return
    import numpy as np

    from chatbot.safety.emergency import EmergencyGate
    from ingestion.embedding import MINILM_ID

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=0, help="hidden units (0: logistic regression)")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--emergency-weight", type=float, default=3.0)
    parser.add_argument("--target-recall", type=float, default=TARGET_RECALL)
    parser.add_argument("--out", type=Path, default=HEAD_FILE)
    parser.add_argument("--cache", type=Path, default=None, help="keep the data's vectors here between runs")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    train, dev = split("train"), split("dev")
    xtr = embed([r["text"] for r in train], args.cache)
    xdv = embed([r["text"] for r in dev], args.cache)
    from chatbot.triage.features import names, rule_features

    gate = EmergencyGate()
    fired_tr = [gate.classify(r["text"]) is not None for r in train]
    fired_dv = [gate.classify(r["text"]) is not None for r in dev]
    ftr = np.array(
        [rule_features(r["text"], f) for r, f in zip(train, fired_tr, strict=True)], dtype=np.float32
    )
    fdv = np.array(
        [rule_features(r["text"], f) for r, f in zip(dev, fired_dv, strict=True)], dtype=np.float32
    )
    ytr = np.array([LEVELS.index(r["level"]) for r in train])
    ydv = np.array([LEVELS.index(r["level"]) for r in dev])
    weights = fit(
        np.hstack([xtr, ftr]),
        ytr,
        hidden=args.hidden,
        epochs=args.epochs,
        weight_decay=args.weight_decay,
        emergency_weight=args.emergency_weight,
    )
    rules = np.array(fired_dv)
    p = predict(weights, np.hstack([xdv, fdv]))
    thresholds = choose_thresholds(p, ydv, rules, args.target_recall, weights=balance(dev), part=parts(dev))
    q, keep = examples(train, xtr)
    head = Head(
        weights=weights,
        encoder=MINILM_ID,
        dim=int(xtr.shape[1]),
        thresholds=thresholds,
        features=names(),
        meta={
            "trained_on": f"data/triage/train.jsonl + handwritten/train_*.jsonl ({len(train)} messages)",
            "thresholds_from": f"data/triage/dev.jsonl + handwritten/dev_*.jsonl ({len(dev)} messages), "
            f"emergency recall >= {args.target_recall}",
            "hidden": args.hidden,
            "epochs": args.epochs,
            "weight_decay": args.weight_decay,
            "emergency_weight": args.emergency_weight,
        },
        example_vectors=q,
        example_texts=[train[i]["text"] for i in keep],
        example_levels=[train[i]["level"] for i in keep],
        example_categories=[train[i]["category"] for i in keep],
    )
    head.save(args.out)
    flagged = raised(p[:, 0], rules, thresholds)
    em = ydv == 0
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - started:.0f} s"
    )
    print(f"thresholds {thresholds}")
    print(
        f"dev: emergency recall {flagged[em].mean():.3f} precision {em[flagged].mean():.3f} "
        f"(rules alone: recall {rules[em].mean():.3f} precision {em[rules].mean() if rules.any() else 0:.3f})"
    )


if __name__ == "__main__":
    main()
