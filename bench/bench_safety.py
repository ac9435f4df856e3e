"""Emergency triage on labelled messages: the rules alone beside rules + classifier.

    python bench/bench_safety.py             # every set, aggregates only
    python bench/bench_safety.py --errors    # also list the mistakes on the dev sets
    python bench/bench_safety.py --no-medquad
    python bench/bench_safety.py --head chatbot/triage/tuned.npz   # another classifier file

Sets: `data/safety/emergency_dev*.jsonl` (read while the rules were written), `data/triage/dev.jsonl`
and `data/triage/handwritten/dev_*.jsonl` (the classifier's dev split: its thresholds were chosen on
it; the hand-written part in English, and "hand dev xx" in other languages), and the held-out sets
whose messages the tuner never read: `data/safety/emergency_heldout.jsonl` and `data/triage/test.jsonl`
(written by someone else, in other categories and styles), plus `data/triage/test_nonenglish.jsonl`.
For those, only aggregates are printed, never a message. Per set: recall and precision of `emergency` with
bootstrap 95% intervals (2,000 resamples of the messages), the three-level confusion matrix where the
set has levels, and false alarms on all MedQuAD questions (informational: every alarm is false).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.triage import LEVELS, Triage  # noqa: E402
from chatbot.triage.train import DEV_CLOSERS  # noqa: E402

HAND = ROOT / "data" / "triage" / "handwritten"
HAND_DEV = HAND / "dev_*.jsonl"
SETS = [
    # name, path (or a glob of hand-written files), held out (never print its messages)
    ("safety dev", ROOT / "data" / "safety" / "emergency_dev.jsonl", False),
    ("safety dev2", ROOT / "data" / "safety" / "emergency_dev2.jsonl", False),
    ("triage dev", ROOT / "data" / "triage" / "dev.jsonl", False),
    ("hand dev", HAND_DEV, False),  # English only; "hand dev xx": the other languages
    ("hand dev xx", HAND_DEV, False),
    ("safety heldout", ROOT / "data" / "safety" / "emergency_heldout.jsonl", True),
    ("triage test", ROOT / "data" / "triage" / "test.jsonl", True),
]
NON_ENGLISH = ROOT / "data" / "triage" / "test_nonenglish.jsonl"
MEDQUAD = ROOT.parent / "shared" / "datasets" / "medquad" / "medquad_answered.jsonl"


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rows_of(name: str, path: Path) -> list[dict[str, Any]]:
    """A set's messages; a glob of hand-written files is split into English and the rest ("xx")."""
    if "*" not in path.name:
        return read(path)
    rows = [row for found in sorted(path.parent.glob(path.name)) for row in read(found)]
    return [r for r in rows if bool(r.get("lang")) == name.endswith(" xx")]


def level_of(row: dict[str, Any]) -> str:
    if "level" in row:
        return str(row["level"])
    return "emergency" if row["emergency"] else "routine"


def recall_precision(got: Any, want: Any) -> tuple[float, float]:
    tp = (got & want).sum()
    return tp / max(want.sum(), 1), tp / max(got.sum(), 1)


def bootstrap(
    got: Any, want: Any, n: int = 2000, seed: int = 0
) -> tuple[tuple[float, float], tuple[float, float]]:
    """95% percentile intervals of recall and precision, resampling messages."""
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(got), size=(n, len(got)))
    g, w = got[idx], want[idx]
    tp = (g & w).sum(axis=1)
    recall = tp / np.maximum(w.sum(axis=1), 1)
    precision = tp / np.maximum(g.sum(axis=1), 1)
    lo, hi = 2.5, 97.5
    return (
        (float(np.percentile(recall, lo)), float(np.percentile(recall, hi))),
        (float(np.percentile(precision, lo)), float(np.percentile(precision, hi))),
    )


CACHE: Path | None = None


def assess_all(triage: Triage, texts: list[str]) -> tuple[list[Any], float]:
    """Triage results for `texts` (vectors embedded in batches first) and the mean seconds per message
    spent beyond the embedding (rules, features, head, nearest examples)."""
    from chatbot.triage.train import embed

    cached = CACHE is not None and not triage.head.adapter  # the cache holds the plain encoder's vectors
    vectors = embed(texts, CACHE) if cached else triage.embed(texts)
    started = time.perf_counter()
    results = [triage.assess(t, v) for t, v in zip(texts, vectors, strict=True)]
    return results, (time.perf_counter() - started) / max(len(texts), 1)


def fmt(value: float, ci: tuple[float, float]) -> str:
    return f"{value:.3f} [{ci[0]:.2f}-{ci[1]:.2f}]"


def score_set(name: str, path: Path, held_out: bool, triage: Triage, show_errors: bool) -> None:
    import numpy as np

    rows = rows_of(name, path)
    if not rows:
        print(f"{name}: skipped (no messages in {path})")
        return
    texts = [r["text"] for r in rows]
    want_levels = [level_of(r) for r in rows]
    results, per_message = assess_all(triage, texts)
    want = np.array([lv == "emergency" for lv in want_levels])
    rules = np.array([triage.gate.classify(t) is not None for t in texts])  # the rules alone
    combined = np.array([r.emergency for r in results])
    line = f"{name:<15} {len(rows):>5} {int(want.sum()):>5}"
    for got in (rules, combined):
        recall, precision = recall_precision(got, want)
        ci_r, ci_p = bootstrap(got, want)
        line += f" | {fmt(recall, ci_r)} {fmt(precision, ci_p)} {int((got & ~want).sum()):>4}"
    print(line + f"  ({per_message * 1000:.1f} ms/msg beyond the embedding)")
    if any("level" in r for r in rows):
        print(f"    confusion (rows: labelled level; columns: combined decision {'/'.join(LEVELS)})")
        for true in LEVELS:
            pairs = list(zip(want_levels, results, strict=True))
            counts = [sum(1 for w, r in pairs if w == true and r.level == got) for got in LEVELS]
            print(f"      {true:<10} " + " ".join(f"{c:>6}" for c in counts))
    if show_errors and not held_out:
        for row, r, w in zip(rows, results, want, strict=True):
            if r.emergency != w:
                kind = "MISSED" if w else "FALSE ALARM"
                print(f"    {kind} [{row.get('category', '')}] p={r.probability:.2f} {row['text']}")


def framed(triage: Triage) -> None:
    """Dev: the hand-written English dev messages as written and with each of `DEV_CLOSERS` added.
    A gate that reads the situation gives the same decisions; one that reads the framing does not."""
    import numpy as np

    rows = rows_of("hand dev", HAND_DEV)
    want = np.array([level_of(r) == "emergency" for r in rows])
    first = None
    for closer in ("", *DEV_CLOSERS):
        results, _ = assess_all(triage, [r["text"].rstrip() + closer for r in rows])
        got = np.array([r.emergency for r in results])
        first = got if first is None else first
        recall, precision = recall_precision(got, want)
        print(
            f"hand dev + {closer or '(as written)':<21} recall {recall:.3f} precision {precision:.3f}; "
            f"{int((got != first).sum())} of {len(rows)} decisions differ from the messages as written"
        )


def non_english(triage: Triage) -> None:
    """Held out: how many non-English messages get the emergency line (an alarm or the language note)."""
    if not NON_ENGLISH.is_file():
        print(f"non-English: skipped ({NON_ENGLISH} is absent)")
        return
    rows = read(NON_ENGLISH)
    results, _ = assess_all(triage, [r["text"] for r in rows])
    detected = sum(r.language is not None for r in results)
    line = sum(r.language is not None or r.emergency for r in results)
    emergencies = [(r, row) for r, row in zip(results, rows, strict=True) if level_of(row) == "emergency"]
    caught = sum(r.emergency for r, _ in emergencies)
    print(
        f"non-English test: {len(rows)} messages; not-English detected {detected}; the emergency line shown "
        f"for {line}; of {len(emergencies)} emergencies, {caught} raised as emergencies"
    )


def medquad(triage: Triage, sample: int | None = None) -> None:
    """MedQuAD's 16k consumer questions are informational: every alarm is a false alarm."""
    if not MEDQUAD.is_file():
        print(f"MedQuAD false alarms: skipped ({MEDQUAD} is absent)")
        return
    questions = [
        json.loads(line)["question"] for line in MEDQUAD.read_text(encoding="utf-8").splitlines() if line
    ]
    if sample and sample < len(questions):
        import random

        questions = random.Random(0).sample(questions, sample)
        print(f"MedQuAD: a seeded sample of {sample} questions")
    results, per_message = assess_all(triage, questions)
    rules = sum(triage.gate.classify(q) is not None for q in questions)
    combined = sum(r.emergency for r in results)
    urgent = sum(r.level == "urgent" for r in results)
    foreign = sum(r.language is not None for r in results)
    n = len(questions)
    print(
        f"MedQuAD questions flagged emergency (false alarms): rules {rules} of {n} ({rules / n:.2%}), "
        f"combined {combined} ({combined / n:.2%}); urgent {urgent} ({urgent / n:.2%}); "
        f"taken for not English {foreign}; {per_message * 1000:.1f} ms/msg beyond the embedding"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--errors", action="store_true", help="list the mistakes on the dev sets")
    parser.add_argument("--no-medquad", action="store_true", help="skip the 16,407 MedQuAD questions")
    parser.add_argument("--dev-only", action="store_true", help="only the dev sets (no held-out aggregate)")
    parser.add_argument(
        "--no-framing", action="store_true", help="skip hand dev with the dev split's closers added"
    )
    parser.add_argument("--medquad-sample", type=int, default=None, help="only N MedQuAD questions (seeded)")
    parser.add_argument("--cache", type=Path, default=None, help="keep the sets' vectors here between runs")
    parser.add_argument(
        "--head", type=Path, default=None, help="a classifier file (default: the package's own)"
    )
    args = parser.parse_args()
    global CACHE
    CACHE = args.cache
    triage = Triage(head_path=args.head).load()
    print(f"classifier: {triage.head_path.name}, thresholds {triage.head.thresholds}")
    print(
        f"{'set':<15} {'msgs':>5} {'emerg':>5} | {'rules: recall [95% CI]':<21} {'precision [95% CI]':<20} "
        f"{'false+':>4} | {'combined: recall':<21} {'precision':<20} {'false+':>4}"
    )
    for name, path, held_out in SETS:
        if held_out and args.dev_only:
            continue
        if not path.is_file() and "*" not in path.name:
            print(f"{name}: skipped ({path} is absent)")
            continue
        score_set(name, path, held_out, triage, args.errors)
    if not args.no_framing:
        framed(triage)
    if not args.dev_only:
        non_english(triage)
    if not args.no_medquad:
        medquad(triage, args.medquad_sample)


if __name__ == "__main__":
    main()
