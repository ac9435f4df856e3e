"""Emergency triage on labelled messages: the rules alone beside rules + classifier.

    python bench/bench_safety.py             # every set, aggregates only
    python bench/bench_safety.py --errors    # also list the mistakes on the dev sets
    python bench/bench_safety.py --no-medquad
    python bench/bench_safety.py --head chatbot/triage/tuned.npz   # another classifier file
    python bench/bench_safety.py --consumer-only   # the consumer questions and the evidence check only

Sets: `data/safety/emergency_dev*.jsonl` (read while the rules were written), `data/triage/dev.jsonl`
and `data/triage/handwritten/dev_*.jsonl` (the classifier's dev split: its thresholds were chosen on
it; the hand-written part in English, and "hand dev xx" in other languages), and the held-out sets
whose messages the tuner never read: `data/safety/emergency_heldout.jsonl` and `data/triage/test.jsonl`
(written by someone else, in other categories and styles), plus `data/triage/test_nonenglish.jsonl`.
For those, only aggregates are printed, never a message. Per set: recall and precision of `emergency` with
bootstrap 95% intervals (2,000 resamples of the messages), the three-level confusion matrix where the
set has levels, and false alarms on all MedQuAD questions (informational: every alarm is false).

Issue #28 adds: per emergency set, the recall of "emergency or graded" (graded: answered under a
banner naming what to watch for) beside the takeover's; the routine consumer questions of
`data/triage/consumer_dev.jsonl` (tuned on) and `consumer_heldout.jsonl` (not: other templates and
other drugs), as false emergencies and graded answers per 1,000 with exact (Clopper-Pearson) 95%
intervals and, since messages of one template are alike, a bootstrap over templates; and, over every
decision made, how many name an emergency category without evidence in the message (`evidence.py`:
a rule's match, or a labelled emergency of that category above the floor and the category's words).
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
from chatbot.triage.dataset import DEV_CLOSERS  # noqa: E402

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
CONSUMER = [
    # name, path, tuned on
    ("consumer dev", ROOT / "data" / "triage" / "consumer_dev.jsonl", True),
    ("consumer heldout", ROOT / "data" / "triage" / "consumer_heldout.jsonl", False),
]
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
    from chatbot.triage.tune import embed_cached

    if CACHE is not None and not triage.head.adapter:  # the plain encoder's vectors
        vectors = embed(texts, CACHE)
    else:  # the file's own encoder (keyed by its adapters' digest), cached with --cache
        vectors = embed_cached(triage, texts, CACHE)
    started = time.perf_counter()
    results = [triage.assess(t, v) for t, v in zip(texts, vectors, strict=True)]
    AUDIT.extend(zip(texts, results, strict=True))
    return results, (time.perf_counter() - started) / max(len(texts), 1)


AUDIT: list[tuple[str, Any]] = []
"""Every (message, decision) made in this run, for `evidence_check`."""


def exact_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Clopper-Pearson interval of a rate of k in n: exact, so never narrower than it should be
    (with no errors at all it still says how many there could be)."""
    tail = (1 - level) / 2

    def crossing(rises: Any) -> float:  # where an increasing function of p reaches `tail`
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if rises(mid) < tail else (lo, mid)
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else crossing(lambda p: 1 - _at_most(k - 1, n, p))  # P(X >= k) = tail
    upper = 1.0 if k == n else crossing(lambda p: 2 * tail - _at_most(k, n, p))  # P(X <= k) = tail
    return lower, upper


def _at_most(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    from math import comb

    return sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


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
    answered = np.array([r.graded for r in results])  # not taken over: answered under a warning
    print(
        f"    emergency or graded: recall {recall_precision(combined | answered, want)[0]:.3f}; graded: "
        f"{int((answered & want).sum())} emergencies and {int((answered & ~want).sum())} others"
    )
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


def template_interval(hits: Any, templates: list[str], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of a rate, resampling whole templates (their messages are alike, so
    resampling messages would understate the spread)."""
    import numpy as np

    names = sorted(set(templates))
    per: dict[str, list[bool]] = {t: [] for t in names}
    for h, t in zip(hits, templates, strict=True):
        per[t].append(bool(h))
    k = np.array([sum(per[t]) for t in names])
    m = np.array([len(per[t]) for t in names])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(names), size=(n, len(names)))
    rates = k[idx].sum(axis=1) / m[idx].sum(axis=1)
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))


def consumer(triage: Triage, show_errors: bool, dev_only: bool = False) -> None:
    """Routine consumer questions (issue #28): every emergency is a false one; graded answers are
    answered, under a banner naming what to watch for. Per 1,000, with exact 95% intervals and a
    bootstrap over templates. Only the dev set's messages are ever listed."""
    from collections import Counter

    for name, path, tuned_on in CONSUMER:
        if dev_only and not tuned_on:
            continue
        if not path.is_file():
            print(f"{name}: skipped ({path} is absent)")
            continue
        rows = read(path)
        results, _ = assess_all(triage, [r["text"] for r in rows])
        n = len(rows)
        templates = [str(r.get("template", i)) for i, r in enumerate(rows)]
        for what, hits in (
            ("false emergencies", [r.emergency for r in results]),
            ("graded (answered, with a warning)", [r.graded for r in results]),
        ):
            k = sum(hits)
            lo, hi = exact_interval(k, n)
            tlo, thi = template_interval(hits, templates)
            print(
                f"{name:<16} {n:>5} messages ({len(set(templates))} templates, "
                f"{'tuned on' if tuned_on else 'not tuned on'}): {what} {k} = {1000 * k / n:.1f} per 1,000 "
                f"[exact 95% {1000 * lo:.1f}-{1000 * hi:.1f}; by template {1000 * tlo:.1f}-{1000 * thi:.1f}]"
            )
        kinds = Counter(r["category"] for r, res in zip(rows, results, strict=True) if res.emergency)
        shown = Counter(res.category or "(none)" for res in results if res.emergency or res.graded)
        print(f"    emergencies by kind {dict(kinds)}; categories shown (emergency or graded) {dict(shown)}")
        if show_errors and tuned_on:
            for row, res in zip(rows, results, strict=True):
                if res.emergency or res.graded:
                    kind = "EMERGENCY" if res.emergency else "GRADED"
                    print(f"    {kind} [{res.category}] p={res.probability:.2f} {row['text']}")


def unsupported(text: str, result: Any, triage: Triage) -> bool:
    """Whether `result` names an emergency category (an emergency, or a graded answer's signs)
    without evidence in `text`: the rule for it fires, or a red-flag pattern of it matches, or a
    labelled emergency of it is at least the floor and the category's words are in the message."""
    from chatbot.triage.evidence import FLOOR, from_red_flags, terms

    if not result.category or not (result.emergency or result.graded):
        return False
    ev = result.evidence
    if ev.category != result.category:
        return True
    if ev.source == "rule":
        return triage.gate.classify(text) != result.category
    if ev.source == "pattern":
        return from_red_flags(text).category != result.category
    floor = float(triage.head.meta.get("evidence_floor", FLOOR))
    return not (ev.source == "nearest" and ev.similarity >= floor and terms(result.category, text))


def evidence_check(triage: Triage) -> None:
    """Over every decision this run made: emergency categories shown without evidence (must be 0)."""
    named = [(t, r) for t, r in AUDIT if r.category and (r.emergency or r.graded)]
    bad = sum(unsupported(t, r, triage) for t, r in named)
    print(
        f"evidence: of {len(AUDIT)} decisions, {len(named)} name an emergency category (emergency or "
        f"graded), {bad} without evidence in the message; "
        f"{sum(1 for _, r in AUDIT if (r.emergency or r.graded) and not r.category)} emergency or graded "
        "decisions name none (general advice)"
    )


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
    parser.add_argument(
        "--consumer-only", action="store_true", help="only the consumer questions and the evidence check"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep the sets' vectors here between runs (per encoder)"
    )
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
        if args.consumer_only:
            break
        if held_out and args.dev_only:
            continue
        if not path.is_file() and "*" not in path.name:
            print(f"{name}: skipped ({path} is absent)")
            continue
        score_set(name, path, held_out, triage, args.errors)
    if not args.no_framing and not args.consumer_only:
        framed(triage)
    if not args.dev_only and not args.consumer_only:
        non_english(triage)
    consumer(triage, args.errors, args.dev_only)
    if not args.no_medquad and not args.consumer_only:
        medquad(triage, args.medquad_sample)
    evidence_check(triage)


if __name__ == "__main__":
    main()
