"""Held-out scores computed the same way for every trainer (TRL's logged names differ by trainer).

DPO and KTO: the implicit reward `beta * (log p_policy(y|x) - log p_ref(y|x))`, the reference being
the same model with its adapter switched off. Reward model: the score head's value. For each
held-out pair: accuracy (chosen above rejected) and the margin (chosen minus rejected).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from contextlib import nullcontext
from typing import Any


def chat_ids(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    if out and isinstance(out[0], list):
        out = out[0]
    return [int(i) for i in out]


def _split(
    tokenizer: Any, prompt: list[dict[str, str]], answer: list[dict[str, str]]
) -> tuple[list[int], int]:
    """Token ids of prompt + answer, and where the answer starts (where the two tokenizations diverge)."""
    p = chat_ids(tokenizer, prompt, generation_prompt=True)
    full = chat_ids(tokenizer, prompt + answer, generation_prompt=False)
    start = 0
    for a, b in zip(p, full, strict=False):
        if a != b:
            break
        start += 1
    return full, start


def completion_logp(
    model: Any, tokenizer: Any, prompt: list[dict[str, str]], answer: list[dict[str, str]]
) -> float:
    import torch

    ids, start = _split(tokenizer, prompt, answer)
    x = torch.tensor([ids], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, :-1].float()
    logps = torch.log_softmax(logits, dim=-1)
    targets = x[0, 1:]
    picked = logps.gather(1, targets.unsqueeze(1)).squeeze(1)
    return float(picked[max(start - 1, 0) :].sum())


def implicit_reward(model: Any, tokenizer: Any, prompt: Any, answer: Any, beta: float) -> float:
    policy = completion_logp(model, tokenizer, prompt, answer)
    off = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    with off:
        ref = completion_logp(model, tokenizer, prompt, answer)
    return beta * (policy - ref)


def reward_score(model: Any, tokenizer: Any, prompt: Any, answer: Any) -> float:
    import torch

    ids, _ = _split(tokenizer, prompt, answer)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], device=model.device))
    return float(out.logits[0, 0])


def _summary(margins: list[float]) -> dict[str, Any]:
    if not margins:
        return {"pairs": 0}
    return {
        "pairs": len(margins),
        "accuracy": sum(m > 0 for m in margins) / len(margins),
        "ties": sum(m == 0 for m in margins),
        "margin_mean": statistics.fmean(margins),
        "margin_median": statistics.median(margins),
    }


def score_heldout(
    model: Any, tokenizer: Any, kind: str, rows: list[dict[str, Any]], beta: float
) -> dict[str, Any]:
    """Pairwise accuracy and margins on the held-out rows (for KTO: the two rows of one judgment)."""
    model.eval()
    if kind == "reward":
        margins = [
            reward_score(model, tokenizer, r["prompt"], r["chosen"])
            - reward_score(model, tokenizer, r["prompt"], r["rejected"])
            for r in rows
        ]
        return {"score": "reward model output", **_summary(margins)}
    if kind == "dpo":
        margins = []
        chosen, rejected = [], []
        for r in rows:
            c = implicit_reward(model, tokenizer, r["prompt"], r["chosen"], beta)
            j = implicit_reward(model, tokenizer, r["prompt"], r["rejected"], beta)
            chosen.append(c)
            rejected.append(j)
            margins.append(c - j)
        out = {"score": "DPO implicit reward", **_summary(margins)}
        if rows:
            out |= {
                "reward_chosen_mean": statistics.fmean(chosen),
                "reward_rejected_mean": statistics.fmean(rejected),
            }
        return out
    by_judgment: dict[str, dict[bool, float]] = defaultdict(dict)
    good: list[float] = []
    bad: list[float] = []
    for r in rows:
        value = implicit_reward(model, tokenizer, r["prompt"], r["completion"], beta)
        (good if r["label"] else bad).append(value)
        # kto rows are aggregated per pair (comparison); older rows were one per judgment
        pair = r.get("comparison_id") or r.get("judgment_id") or id(r)
        by_judgment[str(pair)][bool(r["label"])] = value
    margins = [v[True] - v[False] for v in by_judgment.values() if True in v and False in v]
    out = {"score": "KTO implicit reward", **_summary(margins)}
    out |= {
        "rows": len(rows),
        "reward_desirable_mean": statistics.fmean(good) if good else None,
        "reward_undesirable_mean": statistics.fmean(bad) if bad else None,
    }
    return out
