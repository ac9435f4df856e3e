"""Train the triage head on the train split (`dataset.split`); choose its thresholds on the dev split
(`thresholds.choose_thresholds`).

    python -m chatbot.triage.train                 # writes chatbot/triage/head.npz
    python -m chatbot.triage.train --hidden 0      # logistic regression instead of the small MLP
    python -m chatbot.triage.train --encoder tuned # fine-tune the encoder too (chatbot/triage/tune.py)

Deterministic (seeded, one thread). The test split is never read here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from chatbot.triage.dataset import balance, examples, parts, split
from chatbot.triage.model import HEAD_FILE, LEVELS, Head
from chatbot.triage.thresholds import TARGET_RECALL, choose_thresholds, raised


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
