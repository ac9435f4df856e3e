"""Summarise the `medchat eval` reports under bench/results/ as the README's benchmark tables.

Usage: .venv/bin/python bench/eval_summary.py [RESULTS_DIR]   (prints Markdown)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main(results: Path) -> None:
    reports = {p.parent.name: json.loads(p.read_text()) for p in sorted(results.glob("*/report.json"))}
    retrieval = {k: r for k, r in reports.items() if r["result"]["kind"] == "retrieval"}
    answers = {k: r for k, r in reports.items() if r["result"]["kind"] == "answers"}
    if retrieval:
        print("| benchmark | sample | chunks | method | recall@1 | recall@5 | recall@10 | MRR | run time |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, rep in retrieval.items():
            r = rep["result"]
            sample = rep["sample"]
            what = f"{sample.get('questions')} questions, {sample.get('corpus_docs')} documents"
            for method, m in r["methods"].items():
                rec = m["recall"]
                print(
                    f"| {name} | {what} | {r['index']['chunks']} | {method} | {rec.get('1', 0):.3f} | "
                    f"{rec.get('5', 0):.3f} | {rec.get('10', 0):.3f} | {m['mrr']:.3f} | "
                    f"{rep['seconds']:.0f} s |"
                )
        print()
    for name, rep in answers.items():
        r = rep["result"]
        base = r["majority_baseline"]
        print(
            f"{name} ({rep['sample']['questions']} questions, model `{r['model']}`, {rep['seconds']:.0f} s):"
        )
        print()
        print("| setting | accuracy | macro-F1 | unparsed | generation p50 |")
        print("|---|---|---|---|---|")
        for mode, m in r["modes"].items():
            gen = m["latency"].get("generate_s", {}).get("p50_s", 0.0)
            print(f"| {mode} | {_pct(m['accuracy'])} | {m['macro_f1']:.3f} | {m['unparsed']} | {gen:.2f} s |")
        print(f"| always '{base['label']}' | {_pct(base['accuracy'])} | {base['macro_f1']:.3f} | - | - |")
        if "chance" in r:
            print(f"| chance | {_pct(r['chance'])} | - | - | - |")
        print()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results")
