"""Recall and precision of the emergency gate on the labelled messages in data/safety/.

    python bench/bench_safety.py            # both sets, metrics only
    python bench/bench_safety.py --errors   # also list the dev set's mistakes

`emergency_dev.jsonl` and `emergency_dev2.jsonl` were seen while the rules were designed;
`emergency_heldout.jsonl` was written separately and its messages were never read by the
rules' author, only these aggregate figures, so they are the honest estimate. Only the
dev sets' mistakes are ever printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from chatbot.safety import EmergencyGate

DATA = Path(__file__).resolve().parent.parent / "data" / "safety"
MEDQUAD = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "datasets"
    / "medquad"
    / "medquad_answered.jsonl"
)


def score(path: Path, gate: EmergencyGate, show_errors: bool) -> dict[str, float]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tp = fp = fn = tn = 0
    started = time.perf_counter()
    for row in rows:
        got = gate.classify(row["text"]) is not None
        want = bool(row["emergency"])
        tp += got and want
        fp += got and not want
        fn += want and not got
        tn += not got and not want
        if show_errors and got != want:
            print(f"  {'MISSED' if want else 'FALSE ALARM'} [{row['category']}] {row['text']}")
    per_message_us = (time.perf_counter() - started) / len(rows) * 1e6
    return {
        "messages": len(rows),
        "emergencies": tp + fn,
        "recall": tp / max(tp + fn, 1),
        "precision": tp / max(tp + fp, 1),
        "false_alarms": fp,
        "missed": fn,
        "us_per_message": per_message_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--errors", action="store_true", help="list the dev set's mistakes")
    args = parser.parse_args()
    gate = EmergencyGate()
    header = ("set", "messages", "emerg.", "recall", "precision", "missed", "false+")
    print("{:<10} {:>8} {:>7} {:>7} {:>9} {:>7} {:>7}".format(*header))
    for name in ("dev", "dev2", "heldout"):
        path = DATA / f"emergency_{name}.jsonl"
        r = score(path, gate, args.errors and name != "heldout")
        print(
            f"{name:<10} {r['messages']:>8} {r['emergencies']:>7} {r['recall']:>7.3f} {r['precision']:>9.3f} "
            f"{r['missed']:>7} {r['false_alarms']:>7}   ({r['us_per_message']:.0f} µs/message)"
        )
    medquad_false_alarms(gate)


def medquad_false_alarms(gate: EmergencyGate) -> None:
    """MedQuAD's 16k consumer questions are informational: every flag is a false alarm."""
    if not MEDQUAD.is_file():
        print(f"MedQuAD false alarms: skipped ({MEDQUAD} is absent)")
        return
    questions = [
        json.loads(line)["question"] for line in MEDQUAD.read_text(encoding="utf-8").splitlines() if line
    ]
    flagged = [q for q in questions if gate.classify(q)]
    print(f"MedQuAD questions flagged (false alarms): {len(flagged)} of {len(questions)}")


if __name__ == "__main__":
    main()
