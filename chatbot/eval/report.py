"""Reports: `report.json` (everything), `questions.jsonl` (one record per question),
`report.md` (a readable page) and PNG plots beside it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

COLORS = {"dense": "#1f77b4", "bm25": "#ff7f0e", "hybrid": "#2ca02c"}


def write_report(report: dict[str, Any], records: list[dict[str, Any]], outdir: Path) -> list[Path]:
    """Write the report files; returns their paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    plots = _plots(report, outdir)
    report["plots"] = [p.name for p in plots]
    path = outdir / "report.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(path)
    path = outdir / "questions.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    written.append(path)
    path = outdir / "report.md"
    path.write_text(markdown(report), encoding="utf-8")
    written.append(path)
    return [*written, *plots]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def markdown(report: dict[str, Any]) -> str:
    r = report["result"]
    s = report["settings"]
    lines = [f"# medchat eval: {report['dataset']}", ""]
    lines += [
        f"- data: `{report['path']}`; sample: {json.dumps(report.get('sample', {}))}; "
        f"seed {report['seed']}, limit {report['limit']}",
        f"- fingerprint: sampled ids sha256 `{report['fingerprint']['sampled_ids_sha256'][:16]}`; "
        + ", ".join(f"`{Path(p).name}` `{h[:12]}`" for p, h in report["fingerprint"]["files"].items()),
        f"- run: {report['created']}, {report['seconds']:.1f} s"
        + (f"; command `{' '.join(report['command'])}`" if report.get("command") else ""),
        f"- embedder `{s['embedding']['model']}`, chunks {s['ingestion']['chunk_tokens']} tokens "
        f"(overlap {s['ingestion']['chunk_overlap_tokens']}), RRF candidates {s['retrieval']['candidates']}, "
        f"k {s['retrieval']['k']}",
        "",
    ]
    if r["kind"] == "retrieval":
        lines += _retrieval_md(r)
        if "answers" in r:
            lines += _chain_md(r["answers"])
    else:
        lines += _answers_md(r)
    lines += ["", f"Emergency-gate triggers among the questions: {r['emergency_triggers']}."]
    if "abstention_rate" in r:
        lines += [f"Abstention rate: {_pct(r['abstention_rate'])} ({r['abstention_note']})."]
    lines += ["", "## Latency", "", "| step | p50 s | p95 s | mean s |", "|---|---|---|---|"]
    for name, lat in _latencies(r).items():
        lines.append(f"| {name} | {lat['p50_s']:.4f} | {lat['p95_s']:.4f} | {lat['mean_s']:.4f} |")
    for plot in report.get("plots", []):
        lines += ["", f"![{plot}]({plot})"]
    return "\n".join(lines) + "\n"


def _latencies(r: dict[str, Any]) -> dict[str, dict[str, float]]:
    if r["kind"] == "retrieval":
        return dict(r["latency"])
    return {f"{mode} {step}": lat for mode, m in r["modes"].items() for step, lat in m["latency"].items()}


def _retrieval_md(r: dict[str, Any]) -> list[str]:
    ks = [str(k) for k in r["ks"]]
    nd = [k for k in ("5", "10") if k in ks] or ks[-2:]
    lines = [
        f"Index: {r['index']['chunks']} chunks (collection `{r['index']['collection']}`, "
        f"ingest {r['index']['ingest_s']} s, {r['index']['chunks_embedded_now']} embedded in this run).",
        "",
        "## Retrieval (gold document among the top k chunks)",
        "",
        "| method | "
        + " | ".join(f"R@{k}" for k in ks)
        + " | MRR | "
        + " | ".join(f"nDCG@{k}" for k in nd)
        + " |",
        "|---" * (len(ks) + 2 + len(nd)) + "|",
    ]
    for method, m in r["methods"].items():
        cells = (
            [f"{m['recall'][k]:.3f}" for k in ks] + [f"{m['mrr']:.3f}"] + [f"{m['ndcg'][k]:.3f}" for k in nd]
        )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if any("span_recall" in m for m in r["methods"].values()):
        lines += [
            "",
            "Answer-span recall (a top-k chunk of the gold document contains part of the gold answer):",
            "",
            "| method | " + " | ".join(f"@{k}" for k in ks) + " |",
            "|---" * (len(ks) + 1) + "|",
        ]
        for method, m in r["methods"].items():
            if "span_recall" in m:
                lines.append(f"| {method} | " + " | ".join(f"{m['span_recall'][k]:.3f}" for k in ks) + " |")
    return lines


def _chain_md(a: dict[str, Any]) -> list[str]:
    g = a["of_generated"]
    lines = [
        "",
        f"## Answers through the whole chain ({a['questions']} questions, model `{a['model'] or '-'}`)",
        "",
        f"- abstained (insufficient evidence): {_pct(a['abstention_rate'])}; "
        f"emergency guidance: {_pct(a['emergency_rate'])}",
        f"- of the {g['n']} generated answers: cite the gold document {_pct(g['cites_gold_rate'])}, "
        f"cite nothing {_pct(g['uncited_rate'])}, had invalid citation numbers removed "
        f"{_pct(g['invalid_citation_rate'])}, had citations added by medchat "
        f"{_pct(g['citation_added_rate'])}, "
        f"had unsupported sentences {_pct(g['unsupported_sentence_rate'])}",
        "",
        "| chain step | p50 s | p95 s | mean s |",
        "|---|---|---|---|",
    ]
    for name, lat in a["latency"].items():
        lines.append(f"| {name} | {lat['p50_s']:.3f} | {lat['p95_s']:.3f} | {lat['mean_s']:.3f} |")
    return lines


def _answers_md(r: dict[str, Any]) -> list[str]:
    base = r["majority_baseline"]
    cut = (
        [f"**Interrupted**: the figures cover the first {first['scored']} questions answered.", ""]
        if r.get("interrupted") and (first := next(iter(r["modes"].values()), None))
        else []
    )
    lines = [
        *cut,
        f"Model `{r['model']}` ({r['quantization']}), at most {r['answer_max_tokens']} new tokens, greedy.",
        "",
        "## Accuracy",
        "",
        "| setting | accuracy | macro-F1 | unparsed | predicted |",
        "|---|---|---|---|---|",
    ]
    for mode, m in r["modes"].items():
        lines.append(
            f"| {mode} | {_pct(m['accuracy'])} | {m['macro_f1']:.3f} | {m['unparsed']} | "
            f"{json.dumps(m['predicted'])} |"
        )
    lines.append(
        f"| always '{base['label']}' (majority baseline) | {_pct(base['accuracy'])} | "
        f"{base['macro_f1']:.3f} | - | - |"
    )
    if "chance" in r:
        lines.append(f"| random letter (chance) | {_pct(r['chance'])} | - | - | - |")
    lines += ["", f"Gold distribution: {json.dumps(r['gold_distribution'])}."]
    groups = {mode: m["by_group"] for mode, m in r["modes"].items() if "by_group" in m}
    if groups:
        names = sorted({g for by in groups.values() for g in by})
        lines += ["", "| setting | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for mode, by in groups.items():
            lines.append(f"| {mode} | " + " | ".join(_pct(by.get(g, 0.0)) for g in names) + " |")
    if "retrieval_index" in r:
        lines += ["", f"Retrieval setting searched: {json.dumps(r['retrieval_index'])}."]
    return lines


def _plots(report: dict[str, Any], outdir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: the report has no plots")
        return []
    r = report["result"]
    paths = []
    if r["kind"] == "retrieval":
        fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
        ks = r["ks"]
        for method, m in r["methods"].items():
            ax.plot(ks, [m["recall"][str(k)] for k in ks], marker="o", label=method, color=COLORS.get(method))
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("k (chunks retrieved)")
        ax.set_ylabel("recall@k")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"{report['dataset']}: {len_questions(report)} questions")
        fig.tight_layout()
        path = outdir / "recall_at_k.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    else:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
        modes = list(r["modes"])
        values = [r["modes"][m]["accuracy"] for m in modes]
        ax.bar(modes, values, color="#1f77b4")
        base = r["majority_baseline"]
        ax.axhline(base["accuracy"], color="#d62728", linestyle="--", label=f"always '{base['label']}'")
        if "chance" in r:
            ax.axhline(r["chance"], color="#7f7f7f", linestyle=":", label="chance")
        for x, v in enumerate(values):
            ax.text(x, v + 0.01, f"{100 * v:.0f}%", ha="center")
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{report['dataset']}: {r['model'] or 'model'}")
        ax.legend()
        fig.tight_layout()
        path = outdir / "accuracy.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def len_questions(report: dict[str, Any]) -> int:
    return int(report.get("sample", {}).get("questions", 0))


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few lines for the terminal."""
    r = report["result"]
    head = f"{report['dataset']}: {json.dumps(report.get('sample', {}))}, {report['seconds']:.1f} s"
    lines = [head]
    if r["kind"] == "retrieval":
        ks = [k for k in ("5", "10") if k in r["methods"]["dense"]["recall"]] or [str(r["ks"][-1])]
        for method, m in r["methods"].items():
            recalls = ", ".join(f"recall@{k} {m['recall'][k]:.3f}" for k in ks)
            lines.append(f"  {method:6s} {recalls}, MRR {m['mrr']:.3f}")
    else:
        for mode, m in r["modes"].items():
            lines.append(
                f"  {mode:9s} accuracy {_pct(m['accuracy'])}, macro-F1 {m['macro_f1']:.3f}, "
                f"unparsed {m['unparsed']}"
            )
        base = r["majority_baseline"]
        lines.append(f"  always '{base['label']}': accuracy {_pct(base['accuracy'])}")
    return lines
