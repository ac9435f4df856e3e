"""Grounded answers, measured (issue #26).

Two parts:

`check`: the grounding check (`chatbot.grounding`) against sentences labelled by hand
(`bench/grounding/labelled.jsonl`, guide in `bench/grounding/GUIDE.md`), beside the overlap check it
replaces (`chatbot.attribution`): recall and precision of "not supported" (not_found or contradicted)
with Wilson 95% intervals, contradicted sentences let through, and the cost per answer.

`answers`: the three ways of making the shown answer (`extractive`, `checked`, `free`) on held-out
questions (`bench/grounding/questions_test.txt`) through the real chain on the bundled model and the
sample notes. Resumable: each answer is appended to `--out` as it is made, and a rerun skips the
questions already there. `checked` and `free` share one generation (same prompt, seed and greedy
decoding): `free` is the same raw text shown with inline marks, its first shown text the model's
first token.

    python bench/bench_grounding.py check [--split test]
    python bench/bench_grounding.py answers --out bench/grounding/answers.jsonl
    python bench/bench_grounding.py report --out bench/grounding/answers.jsonl [--judged judged.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.attribution import attribute  # noqa: E402
from chatbot.grounding import (  # noqa: E402
    CONTRADICTED,
    NOT_FOUND,
    SUPPORTED,
    Meaning,
    check_sentence,
    present,
    units,
)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of k successes in n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n if n else 0:.3f} [{lo:.2f}-{hi:.2f}] ({k}/{n})"


def overlap_flags(sentence: str, passages: list[str]) -> bool:
    """Today's check: the sentence is reported unsupported by `attribute`."""
    return bool(attribute(sentence, passages).unsupported)


def grounding_flags(
    sentence: str, passages: list[str], found: Any, meaning: Any = None, question: str = ""
) -> tuple[bool, str]:
    c = check_sentence(sentence, passages, found, meaning=meaning, question=question)
    return c.verdict != SUPPORTED, c.verdict


def bundled_embedder() -> Any:
    """The MiniLM that the index and the chain use (from the installed package, offline)."""
    from chatbot.settings import Settings
    from ingestion.embedding import get_embedder

    return get_embedder(Settings())


def run_check(split: str | None, lexical_only: bool = False) -> dict[str, Any]:
    """`split`: dev, test (the first labelled set), free (labelled later, blind, on the raw free
    answers of bench/grounding/answers.jsonl), or all."""
    from bench.grounding_data import load_free, load_labelled

    if split == "free":
        answers = load_free()
    else:
        answers = [a for a in load_labelled() if split in (None, "all", a["split"])]
        if split in (None, "all"):
            answers += load_free()
    embedder = None if lexical_only else bundled_embedder()
    if embedder is not None:
        embedder.embed_query("warm up")
    rows = []
    seconds = []
    for a in answers:
        passages = a["passages"]
        t = time.perf_counter()
        found = units(passages)
        meaning = Meaning(embedder, found) if embedder is not None else None
        verdicts = []
        for s in a["sentences"]:
            verdicts.append(grounding_flags(s["sentence"], passages, found, meaning, a.get("question", "")))
        seconds.append(time.perf_counter() - t)
        for s, (flag, verdict) in zip(a["sentences"], verdicts, strict=True):
            if not s.get("claim", True):
                continue
            rows.append(
                {
                    "gold": s["label"],
                    "new": flag,
                    "verdict": verdict,
                    "old": overlap_flags(s["sentence"], passages),
                    "sentence": s["sentence"],
                    "id": a["id"],
                }
            )
    bad = [r for r in rows if r["gold"] != SUPPORTED]
    out: dict[str, Any] = {"split": split or "all", "answers": len(answers), "claims": len(rows)}
    out["labels"] = {k: sum(1 for r in rows if r["gold"] == k) for k in (SUPPORTED, NOT_FOUND, CONTRADICTED)}
    for name in ("new", "old"):
        tp = sum(1 for r in bad if r[name])
        flagged = sum(1 for r in rows if r[name])
        through = [r for r in rows if r["gold"] == CONTRADICTED and not r[name]]
        out[name] = {
            "recall": rate(tp, len(bad)),
            "precision": rate(tp, flagged),
            "contradicted_let_through": len(through),
            "let_through": [r["sentence"] for r in through],
        }
    contra = [r for r in rows if r["gold"] == CONTRADICTED]
    out["new"]["contradicted_called_contradicted"] = rate(
        sum(1 for r in contra if r["verdict"] == CONTRADICTED), len(contra)
    )
    out["new"]["false_alarms"] = [r["sentence"] for r in rows if r["gold"] == SUPPORTED and r["new"]][:40]
    out["ms_per_answer"] = {
        "median": round(1000 * statistics.median(seconds), 2) if seconds else None,
        "max": round(1000 * max(seconds), 2) if seconds else None,
    }
    return out


# -- the three answer modes on held-out questions ---------------------------------------------


class ReplayEngine:
    """The model's answers of an earlier run, replayed word for word (greedy decoding with the same
    prompt and seed writes the same text): the check and the shown text are remade with the current
    code without another hour of generation. Timings are kept from the run that generated them."""

    quantization = "Q4_1"

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows
        self.name = next(iter(rows.values()))["model"] if rows else "replay"
        self.question = ""

    def stream(self, messages: Any, params: Any) -> Any:
        row = self.rows[self.question]
        yield row["raw_answer"]


def run_answers(questions: Path, out: Path, limit: int | None, replay: Path | None = None) -> None:
    from chatbot.chain import Chain
    from chatbot.settings import Settings

    asked = [q.strip() for q in questions.read_text(encoding="utf-8").splitlines() if q.strip()][:limit]
    done = set()
    if out.exists():
        done = {(r["question"], r["mode"]) for r in map(json.loads, out.read_text().splitlines())}
    settings = Settings()
    chains = {}
    for mode in ("extractive", "checked"):
        s = settings.model_copy(deep=True)
        s.generation.grounding = mode
        chains[mode] = Chain(s)
    chains["checked"]._retriever = chains["extractive"].retriever  # one index, one embedder
    chains["checked"]._embedder = chains["extractive"].embedder
    chains["checked"]._triage = chains["extractive"].triage
    earlier: dict[str, dict[str, Any]] = {}
    engine = None
    if replay is not None:
        for line in replay.read_text().splitlines():
            r = json.loads(line)
            if r["mode"] == "checked":
                earlier[r["question"]] = r
        engine = ReplayEngine(earlier)
        chains["checked"]._engine = engine
    with out.open("a", encoding="utf-8") as f:
        for i, q in enumerate(asked, start=1):
            for mode in ("extractive", "checked"):
                if (q, mode) in done:
                    continue
                t = time.perf_counter()
                if engine is not None:
                    engine.question = q
                answer = chains[mode].answer(q)
                seconds = time.perf_counter() - t
                row = answer.as_dict()
                row["mode"], row["seconds"] = mode, round(seconds, 3)
                if engine is not None and mode == "checked" and q in earlier:
                    old = earlier[q]  # the generating run's clock, not the replay's
                    row["timings"], row["seconds"] = old["timings"], old["seconds"]
                    row["model"] = old["model"]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                if mode == "checked" and not answer.emergency and not answer.abstained:
                    free = present(answer.raw_text, [p.text for p in answer.passages], inline=True)
                    frow = dict(row, mode="free", answer=free.text, withheld=[], corrected=free.corrected)
                    frow["sentences"] = [c.as_dict() for c in free.checks]
                    frow["timings"] = dict(
                        row["timings"], first_token_s=row["timings"].get("model_first_token_s")
                    )
                    f.write(json.dumps(frow, ensure_ascii=False) + "\n")
                    f.flush()
                print(f"[{i}/{len(asked)}] {mode} {seconds:.1f}s {q[:60]}", flush=True)


def first_shown_s(row: dict[str, Any]) -> float | None:
    """Seconds from the request to the first text the user sees: everything before generation
    (triage, retrieval, prompt) plus the generate step's time to its first shown piece."""
    t = row["timings"]
    if t.get("first_token_s") is None or t.get("generate_s") is None:
        return None
    return float(t["total_s"]) - float(t["generate_s"]) + float(t["first_token_s"])


def report(out: Path, judged: Path | None = None) -> dict[str, Any]:
    """Figures per mode from an answers file; with `judged` (hand judgments, `JUDGING.md`), the
    hand-counted share of shown sentences supported, answers that address the question, and
    gold-document citation."""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    hand: dict[tuple[str, str], dict[str, Any]] = {}
    if judged is not None and judged.exists():
        key = json.loads((judged.parent / "judge_key.json").read_text())
        sheet = [json.loads(line) for line in (judged.parent / "to_judge.jsonl").read_text().splitlines()]
        questions = {r["id"]: r["question"] for r in sheet}
        for line in judged.read_text().splitlines():
            j = json.loads(line)
            hand[(questions[j["id"]], key[j["id"]])] = j
    result: dict[str, Any] = {}
    for mode in ("extractive", "checked", "free"):
        mine = [r for r in rows if r["mode"] == mode and not r["emergency"] and not r["abstained"]]
        if not mine:
            continue
        first = [x for x in (first_shown_s(r) for r in mine) if x is not None]
        words = [len(r["answer"].split()) for r in mine]
        figures: dict[str, Any] = {
            "answers": len(mine),
            "median_words": statistics.median(words),
            "median_s_to_first_shown_text": round(statistics.median(first), 2) if first else None,
            "withheld_sentences": sum(len(r.get("withheld") or []) for r in mine),
            "corrected_sentences": sum(len(r.get("corrected") or []) for r in mine),
        }
        judged_rows = [hand[(r["question"], mode)] for r in mine if (r["question"], mode) in hand]
        if judged_rows:
            claims = [s for j in judged_rows for s in j["sentences"] if s["label"] != "no_claim"]
            ok = sum(1 for s in claims if s["label"] == "supported")
            figures["hand_shown_sentences_supported"] = rate(ok, len(claims))
            figures["hand_answers_showing_a_contradicted_sentence"] = sum(
                1 for j in judged_rows if any(s["label"] == "contradicted" for s in j["sentences"])
            )
            figures["hand_misleading_sentences"] = sum(
                1 for j in judged_rows for s in j["sentences"] if s.get("misleading")
            )
            figures["hand_addresses_question"] = rate(
                sum(1 for j in judged_rows if j["addresses"] == "yes"), len(judged_rows)
            )
            figures["hand_addresses_at_least_partly"] = rate(
                sum(1 for j in judged_rows if j["addresses"] in ("yes", "partly")), len(judged_rows)
            )
            with_gold = [j for j in judged_rows if j.get("gold")]
            figures["gold_document_cited"] = rate(
                sum(1 for j in with_gold if j["gold_cited"]), len(with_gold)
            )
        result[mode] = figures
    result["emergencies_or_abstentions"] = sum(
        1 for r in rows if r["mode"] == "extractive" and (r["emergency"] or r["abstained"])
    )
    return result


def run_cost() -> dict[str, Any]:
    """What the check costs per answer as the chat runs it (rules + meaning), with the passage cache
    emptied before each answer (cold) and kept (warm), on the sample-note answers of labelled.jsonl."""
    import chatbot.grounding as g

    embedder = bundled_embedder()
    embedder.embed_query("warm up")
    rows = [json.loads(x) for x in (ROOT / "bench/grounding/labelled.jsonl").read_text().splitlines() if x]
    rows = [r for r in rows if r.get("answer") and all(isinstance(p, str) for p in r.get("passages", [None]))]
    result: dict[str, Any] = {"answers": len(rows)}
    for name, cold in (("cold", True), ("warm", False)):
        g._MEANING_CACHE.clear()
        took = []
        for r in rows:
            if cold:
                g._MEANING_CACHE.clear()
            t = time.perf_counter()
            g.check_answer(r["answer"], r["passages"], embedder=embedder, question=r.get("question", ""))
            took.append((time.perf_counter() - t) * 1000)
        took.sort()
        result[f"{name}_ms"] = {
            "median": round(statistics.median(took), 1),
            "p90": round(took[int(0.9 * (len(took) - 1))], 1),
            "max": round(took[-1], 1),
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="the check against hand labels")
    c.add_argument("--split", default="test", choices=["dev", "test", "free", "all"])
    c.add_argument("--lexical-only", action="store_true", help="the rules alone, without MiniLM (Meaning)")
    c.add_argument("--full", action="store_true", help="also print the sentences let through")
    a = sub.add_parser("answers", help="answer held-out questions in each mode (resumable)")
    a.add_argument("--questions", type=Path, default=ROOT / "bench/grounding/questions_test.txt")
    a.add_argument("--out", type=Path, default=ROOT / "bench/grounding/answers.jsonl")
    a.add_argument("--limit", type=int, default=None)
    a.add_argument(
        "--replay", type=Path, default=None, help="reuse the model text of an earlier answers file"
    )
    r = sub.add_parser("report", help="figures from an answers file")
    r.add_argument("--out", type=Path, default=ROOT / "bench/grounding/answers.jsonl")
    r.add_argument("--judged", type=Path, default=ROOT / "bench/grounding/judged.jsonl")
    sub.add_parser("cost", help="ms per answer of the check as the chat runs it (rules + meaning)")
    args = ap.parse_args()
    if args.cmd == "cost":
        print(json.dumps(run_cost(), indent=2))
    elif args.cmd == "check":
        result = run_check(args.split, args.lexical_only)
        if not args.full:
            for name in ("new", "old"):
                result[name].pop("let_through")
            result["new"].pop("false_alarms")
        print(json.dumps(result, indent=2, ensure_ascii=False))
    elif args.cmd == "answers":
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        run_answers(args.questions, args.out, args.limit, args.replay)
    else:
        print(json.dumps(report(args.out, args.judged), indent=2))


if __name__ == "__main__":
    main()
