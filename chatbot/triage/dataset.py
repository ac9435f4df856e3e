"""The labelled triage messages both trainers read (`train.py`, `tune.py`): the splits, where each
message comes from, the weights and parts of dev that thresholds are chosen on, and the labelled
examples a classifier file keeps. The test split is never read here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatbot.settings import bundled
from chatbot.triage.model import LEVELS

DATA = bundled("triage")


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
