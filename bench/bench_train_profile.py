"""Seconds per DPO step and peak memory for `medchat train` settings on this machine.

Each configuration runs in its own process (so its peak RSS is its own): the bundled SmolLM2 with
LoRA on attention and MLP, the trainer built by `chatbot.training.run` exactly as `medchat train`
builds it, on DPO rows made the way the app makes them (the real prompt with three MedQuAD
passages, shortened by `chatbot.training.data.fit_row` to `max_length`, never the question or the
answers; answers of about 100-160 tokens). It trains a few optimizer steps and reports:

- `init_s`: building the trainer (tokenizing; with `precompute_ref`, the reference pass over the rows),
- `first_step_s` and `step_s` (the median of the later steps), `s_per_pair` = step_s / pairs per step,
- `ref_s_per_pair`: the precompute's cost per pair (0 without it),
- `peak_rss_gb` of the process, and the projection for `--project-pairs` pairs, one epoch.

    nice -n 10 .venv/bin/python bench/bench_train_profile.py                   # all configurations
    nice -n 10 .venv/bin/python bench/bench_train_profile.py --only cpu --steps 4

Needs ../shared/datasets/medquad. Results are printed and written to --out (JSON).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad" / "medquad_answered.jsonl"

# name -> (Options overrides, TRL overrides); None in Options means the device profile's value
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # TRL 1.x's own defaults for DPOConfig: gradient checkpointing and bf16 on, 1,024 tokens
    "trl-defaults": (
        {"max_length": 1024, "batch_size": 2, "grad_accum": 1, "precompute_ref": False},
        {"gradient_checkpointing": True, "bf16": True},
    ),
    # what `medchat train dpo` did on a CPU before the profile (checkpointing and bf16 already off)
    "before": ({"max_length": 1024, "batch_size": 2, "grad_accum": 1, "precompute_ref": False}, {}),
    "512-b2-adapter-off-ref": (
        {"max_length": 512, "batch_size": 2, "grad_accum": 2, "precompute_ref": False},
        {},
    ),
    "512-b1-adapter-off-ref": (
        {"max_length": 512, "batch_size": 1, "grad_accum": 4, "precompute_ref": False},
        {},
    ),
    "512-b2-precompute": ({"max_length": 512, "batch_size": 2, "grad_accum": 2, "precompute_ref": True}, {}),
    # the CPU profile as shipped (PROFILES["cpu"]): 512 tokens, batch 1 x 4, reference precomputed
    "cpu": ({}, {}),
}


def rows(n: int, seed: int) -> list[dict[str, Any]]:
    """DPO rows in the app's prompt format: three passages of one MedQuAD topic, its question, and two
    answers written from the first passage (one cited and longer, one shorter)."""
    from types import SimpleNamespace

    from prompts import PromptVariant, build_prompt

    data = [json.loads(line) for line in MEDQUAD.open(encoding="utf-8")]
    data = [r for r in data if r.get("answer") and 600 < len(r["answer"]) < 4000]
    rng = random.Random(seed)
    rng.shuffle(data)
    out = []
    for i in range(n):
        picks = data[3 * i : 3 * i + 3]
        built = build_prompt(
            picks[0]["question"], [SimpleNamespace(text=p["answer"]) for p in picks], PromptVariant()
        )
        sentences = picks[0]["answer"].replace("\n", " ").split(". ")
        chosen = ". ".join(sentences[:5])[:700] + " [1]"
        rejected = ". ".join(sentences[1:4])[:450]
        out.append(
            {
                "prompt": [{"role": m.role, "content": m.content} for m in built.messages],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return out


def child(name: str, steps: int, home: Path, result: Path) -> None:
    t_start = time.perf_counter()
    os.environ["MEDCHAT_HOME"] = str(home)
    import torch
    from transformers import TrainerCallback

    from chatbot.settings import Settings
    from chatbot.training import base as base_mod
    from chatbot.training import data
    from chatbot.training.data import Selection
    from chatbot.training.run import PROFILES, Options, _trainer

    overrides, trl = CONFIGS[name]
    opts = Options(kind="dpo", **overrides)
    opts.apply_profile("cpu")
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    settings = Settings()
    base = base_mod.prepare(base_mod.resolve_base(None, settings), settings)
    loaded = base_mod.load(base, "dpo", device="cpu")
    assert opts.batch_size and opts.grad_accum and opts.max_length  # filled by apply_profile
    per_step = opts.batch_size * opts.grad_accum
    made = rows(per_step * steps, seed=0)
    fitted = [data.fit_row(r, "dpo", loaded.tokenizer, opts.max_length) for r in made]
    tokens = [
        data.count_tokens(loaded.tokenizer, r["prompt"], generation_prompt=True)
        + max(data._answer_tokens(loaded.tokenizer, r[k]) for k in ("chosen", "rejected"))
        for r, _ in fitted
    ]
    sel = Selection("dpo", [r for r, _ in fitted], [])
    opts.max_steps, opts.save_steps, opts.progress = steps, 10_000, False
    stamps: list[float] = []
    cpu: list[float] = []  # process CPU seconds (all threads): less sensitive to other jobs than wall time

    class Clock(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())

    out_dir = Path(tempfile.mkdtemp(prefix="profile-", dir=home))
    t0, c0 = time.perf_counter(), time.process_time()
    import trl as trl_mod

    if trl:  # the TRL-defaults configuration: patch the config the trainer builds
        real = trl_mod.DPOConfig

        def patched(**kw: Any) -> Any:
            return real(**{**kw, **trl})

        trl_mod.DPOConfig = patched  # type: ignore[misc,assignment]
    trainer = _trainer(opts, loaded, sel, out_dir, [Clock()])
    init_s, init_cpu = time.perf_counter() - t0, time.process_time() - c0
    trainer.train()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    step_s = statistics.median(gaps[1:]) if len(gaps) > 1 else gaps[0]
    cpu_gaps = [b - a for a, b in itertools.pairwise(cpu)]
    step_cpu = statistics.median(cpu_gaps[1:]) if len(cpu_gaps) > 1 else cpu_gaps[0]
    cores = len(os.sched_getaffinity(0))
    args = trainer.args
    n_pairs = len(sel.train)
    ref_s = init_s if opts.precompute_ref else 0.0  # tokenizing a few rows is well under a second
    res = {
        "config": name,
        "max_length": opts.max_length,
        "batch_size": opts.batch_size,
        "grad_accum": opts.grad_accum,
        "pairs_per_step": per_step,
        "precompute_ref": bool(args.precompute_ref_log_probs),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "bf16": bool(args.bf16),
        "threads": torch.get_num_threads(),
        "row_tokens_mean": round(statistics.fmean(tokens), 1),
        "steps": len(gaps),
        "init_s": round(init_s, 1),
        "first_step_s": round(gaps[0], 1),
        "step_s": round(step_s, 1),
        "s_per_pair": round(step_s / per_step, 2),
        "ref_s_per_pair": round(ref_s / n_pairs, 2),
        "cpu_s_per_pair": round(step_cpu / per_step, 2),
        "ref_cpu_s_per_pair": round((init_cpu if opts.precompute_ref else 0.0) / n_pairs, 2),
        # what an idle machine would take: CPU seconds spread over all its cores
        "idle_s_per_pair": round((step_cpu / per_step) / cores, 2),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "load_s": round(t0 - t_start, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "losses": [round(x["loss"], 4) for x in trainer.state.log_history if "loss" in x],
        "profile_cpu": {k: v for k, v in vars(PROFILES["cpu"]).items()},
    }
    result.write_text(json.dumps(res) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configurations to run (default all)")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per configuration")
    ap.add_argument("--project-pairs", type=int, default=200)
    ap.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "medchat-bench-profile")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default: print only)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not MEDQUAD.is_file():
        raise SystemExit(f"{MEDQUAD} is missing: this benchmark builds its rows from the shared MedQuAD file")
    args.home.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child, args.steps, args.home, args.result)
        return
    results = []
    for name in args.only or list(CONFIGS):
        result = args.home / f"{name}.json"
        result.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--child", name, "--steps", str(args.steps)]
        cmd += ["--home", str(args.home), "--result", str(result)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not result.is_file():
            why = (
                "killed (SIGKILL: the kernel's out-of-memory killer, see dmesg)"
                if proc.returncode == -9
                else "failed"
            )
            print(f"{name}: {why} after {time.perf_counter() - t:.0f} s\n{proc.stderr[-2000:]}", flush=True)
            continue
        res = json.loads(result.read_text(encoding="utf-8"))
        res["wall_s"] = round(time.perf_counter() - t, 1)
        n = args.project_pairs
        res[f"projected_min_{n}_pairs"] = round(n * (res["s_per_pair"] + res["ref_s_per_pair"]) / 60, 1)
        cores = len(os.sched_getaffinity(0))
        idle = res["idle_s_per_pair"] + res["ref_cpu_s_per_pair"] / cores
        res[f"idle_projected_min_{n}_pairs"] = round(n * idle / 60, 1)
        results.append(res)
        print(json.dumps(res), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    n = args.project_pairs
    print(
        "\n| config | max_length | batch x accum | reference | s/step | s/pair | CPU s/pair | peak RSS GB "
        f"| {n} pairs, min (as run) | {n} pairs, min (idle, from CPU s) | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ref = "precomputed" if r["precompute_ref"] else "adapter off"
        cells = [
            r["config"], r["max_length"], f"{r['batch_size']} x {r['grad_accum']}", ref, r["step_s"],
            r["s_per_pair"], r["cpu_s_per_pair"], r["peak_rss_gb"], r[f"projected_min_{n}_pairs"],
            r[f"idle_projected_min_{n}_pairs"], r["load_avg_1min"],
        ]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
