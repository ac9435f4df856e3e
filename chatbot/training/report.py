"""What a run leaves beside the model: metrics.json, report.md, loss.png and the model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SERVE_NOTE = {
    "transformers": "MEDCHAT_GENERATION__ENGINE=transformers MEDCHAT_GENERATION__MODEL_PATH={merged}",
    "llamacpp": "MEDCHAT_GENERATION__ENGINE=llamacpp MEDCHAT_GENERATION__MODEL_PATH={gguf}",
}


def loss_points(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e and "step" in e]


def plot_loss(points: list[tuple[int, float]], path: Path, title: str) -> Path | None:
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=2.5, linewidth=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.1f}%"


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.4f}"


def markdown(card: dict[str, Any]) -> str:
    m = card["metrics"]
    h = m.get("heldout", {})
    hp = card["hyperparameters"]
    data = card["data"]
    base = card["base_model"]
    how = "QLoRA, 4-bit nf4 base" if card["qlora"] else "LoRA, " + card["dtype"]
    versions = ", ".join(data["guideline_versions"]) or "n/a"
    lines = [
        f"# medchat {card['kind'].upper()} run `{card['name']}`",
        "",
        f"- base model: `{base['label']}` (sha256 `{base['sha256'][:16] or 'n/a'}`)",
        f"- trained on {card['device']} ({how}), "
        f"{m.get('train_seconds', 0):.0f} s, {m.get('steps', 0)} optimizer steps",
        f"- data: {data['train_rows']} training {data['unit']} from {data['train_questions']} questions; "
        f"{data['eval_rows']} held-out {data['unit']} from {data['eval_questions']} other questions "
        f"(split by question, seed {hp['seed']}); guideline versions {versions}",
        f"- left out by the export's selection rules: {sum(data['excluded'].values())} "
        + (
            "(" + "; ".join(f"{n} {r}" for r, n in data["excluded"].items()) + ")" if data["excluded"] else ""
        ),
        "",
        "## Held-out scores",
        "",
        "| score | pairs | accuracy | mean margin | median margin |",
        "|---|---|---|---|---|",
        f"| {h.get('score', 'n/a')} | {h.get('pairs', 0)} | {_pct(h.get('accuracy'))} | "
        f"{_num(h.get('margin_mean'))} | {_num(h.get('margin_median'))} |",
        "",
        "Accuracy: share of held-out pairs where the preferred answer scores higher; 50% is chance.",
        "",
        "## Training loss",
        "",
        f"first {_num(m.get('loss_first'))}, last {_num(m.get('loss_last'))}, "
        f"mean of the last quarter {_num(m.get('loss_last_quarter_mean'))}",
        "",
        "![loss](loss.png)" if (card.get("files") or {}).get("loss_plot") else "",
        "",
        "## Hyperparameters",
        "",
        "```json",
        json.dumps(hp, indent=2),
        "```",
        "",
        "## Serving it",
        "",
    ]
    files = card.get("files") or {}
    if files.get("merged") and card["kind"] != "reward":
        lines.append(f"- transformers: `{SERVE_NOTE['transformers'].format(merged=files['merged'])}`")
    if files.get("gguf"):
        lines.append(f"- llama.cpp: `{SERVE_NOTE['llamacpp'].format(gguf=files['gguf'])}`")
    if card.get("variant"):
        lines.append(f"- registered as variant `{card['variant']}` in `{card.get('variants_file')}`")
    if card["kind"] == "reward":
        lines.append(
            "- a reward model scores answers; it does not write them (`adapter/` holds the score head)"
        )
    return "\n".join(lines).rstrip() + "\n"


def write(card: dict[str, Any], run_dir: Path) -> list[Path]:
    """metrics.json (everything), report.md and README.md (the card, with a model-card header)."""
    written = []
    path = run_dir / "metrics.json"
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    written.append(path)
    text = markdown(card)
    path = run_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    written.append(path)
    header = [
        "---",
        f"base_model: {card['base_model']['label']}",
        "library_name: peft",
        f"tags: [medchat, trl, {card['kind']}, lora]",
        "---",
        "",
    ]
    ids = card["data"]
    body = (
        text
        + "\n## Judgments used\n\n"
        + f"training ({len(ids['train_judgment_ids'])}): "
        + ", ".join(ids["train_judgment_ids"])
        + f"\n\nheld out ({len(ids['eval_judgment_ids'])}): "
        + ", ".join(ids["eval_judgment_ids"])
        + "\n"
    )
    path = run_dir / "README.md"
    path.write_text("\n".join(header) + body, encoding="utf-8")
    written.append(path)
    return written
