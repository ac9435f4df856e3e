"""Generation engines side by side on this machine's CPU: tokens/s, time to first token, memory.

Cases, each in its own process (so its peak resident memory is its own):

  llamacpp       medchat's llama.cpp engine on the bundled SmolLM2 Q4_1 GGUF
  llamacpp-bare  plain `llama_cpp.Llama` on the same file with the same settings
  hf-fp32        medchat's transformers engine, the same weights dequantized to float32
  hf-nf4         medchat's transformers engine, bitsandbytes nf4 (double quant) on the CPU

Each case answers a short chat prompt and a ~1,500-token one (sample-corpus passages and a
question), greedy, up to `--new-tokens` tokens, `--repeats` times with a cold KV cache, and
reports medians. tokens/s is the decode rate after the first token; TTFT includes prefill.
hf-nf4 runs twice: its first load may quantize the model and keep the 4-bit copy that later
loads use (that run is shown and left out of the table).
The llama.cpp pair runs `--rounds` times alternately, to spread out the noise of a shared
machine. Memory: peak RSS of the process (`ru_maxrss`); for transformers also the weights
alone (`model.get_memory_footprint()`) and the model's share of the peak, that is the peak
minus the resident memory once torch, transformers and bitsandbytes are imported, after the
short prompts and after the long ones.

    nice -n 10 python bench/bench_engines.py
    python bench/bench_engines.py --cases llamacpp,llamacpp-bare --rounds 3
    python bench/bench_engines.py --paired 20     # both llama.cpp variants in one process, alternately
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import bare_llama_stream  # noqa: E402
from chatbot.engines.base import ChatMessage, GenerationParams  # noqa: E402

CASES = ("llamacpp", "llamacpp-bare", "hf-fp32", "hf-nf4")
SYSTEM = "You are a careful clinician. Answer from the numbered passages and cite them like [1]."
LONG_CHARS = 6200  # about 1,500 SmolLM2 tokens of sample-corpus text with the question


def prompts() -> dict[str, list[ChatMessage]]:
    notes = sorted((REPO / "data" / "corpus").glob("*.md"))
    text, n = "", 1
    for note in notes:
        for para in note.read_text(encoding="utf-8").split("\n\n"):
            para = " ".join(para.split())
            if len(para) > 200 and len(text) < LONG_CHARS:
                text += f"[{n}] {para}\n\n"
                n += 1
    question = "How is high blood pressure treated?"
    return {
        "short": [ChatMessage("system", SYSTEM), ChatMessage("user", question)],
        "long": [ChatMessage("system", SYSTEM), ChatMessage("user", f"{text}Question: {question}")],
    }


def _time_stream(pieces: Any) -> tuple[float, float, str]:
    """(time to first piece, time from first to last piece, text)."""
    t0 = time.perf_counter()
    first = last = None
    out = []
    for piece in pieces:
        last = time.perf_counter()
        first = first or last
        out.append(piece)
    assert first is not None and last is not None, "no output"
    return first - t0, last - first, "".join(out)


def run_case(case: str, new_tokens: int, repeats: int, models_dir: Path) -> dict[str, Any]:
    threads = os.cpu_count() or 1
    params = GenerationParams(max_new_tokens=new_tokens, temperature=0.0)
    result: dict[str, Any] = {"case": case}
    t0 = time.perf_counter()
    if case in ("llamacpp", "llamacpp-bare"):
        from chatbot.engines.llamacpp import LlamaCppEngine, bundled_model_path

        path = bundled_model_path()
        if case == "llamacpp":
            engine = LlamaCppEngine(path, n_ctx=4096, n_threads=threads)
            llm = engine._llm

            def generate(messages: list[ChatMessage]) -> Any:
                return engine.stream(messages, params)
        else:
            from llama_cpp import Llama

            llm = Llama(model_path=str(path), n_ctx=4096, n_threads=threads, seed=0, verbose=False)

            def generate(messages: list[ChatMessage]) -> Any:
                return bare_llama_stream(llm, messages, params)

        def count(text: str) -> int:
            return len(llm.tokenize(text.encode(), add_bos=False, special=False))

        def reset() -> None:
            llm.reset()  # no prefix reuse between runs: every prompt is prefilled in full

        result["weights_mib"] = round(path.stat().st_size / 2**20, 1)
    else:
        import bitsandbytes  # noqa: F401  (imported by both cases, so that the baselines match)
        import torch  # noqa: F401

        from chatbot.engines.transformers_engine import TransformersEngine

        quant: Literal["none", "nf4"] = "none" if case == "hf-fp32" else "nf4"
        copies = set(models_dir.glob("*-nf4-*")) if models_dir.is_dir() else set()
        result["base_rss_mib"] = round(_rss_mib(), 1)
        t0 = time.perf_counter()
        hf = TransformersEngine(quantization=quant, device="cpu", models_dir=models_dir, n_ctx=4096)
        if case == "hf-nf4":
            result["quantized_now"] = set(models_dir.glob("*-nf4-*")) != copies

        def generate(messages: list[ChatMessage]) -> Any:
            return hf.stream(messages, params)

        def count(text: str) -> int:
            return len(hf.tokenizer(text, add_special_tokens=False)["input_ids"])

        def reset() -> None:
            pass

        result["weights_mib"] = round(hf.memory_footprint() / 2**20, 1)
    result["load_s"] = round(time.perf_counter() - t0, 2)
    reset()
    list(generate([ChatMessage("user", "Say hello.")]))  # warm-up
    for label, messages in prompts().items():
        ttfts, rates = [], []
        for _ in range(repeats):
            reset()
            ttft, decode, text = _time_stream(generate(messages))
            tokens = count(text)
            ttfts.append(ttft)
            rates.append((tokens - 1) / decode if decode > 0 else float("nan"))
        result[f"{label}_ttft_s"] = round(statistics.median(ttfts), 3)
        result[f"{label}_tok_s"] = round(statistics.median(rates), 1)
        result[f"{label}_new_tokens"] = tokens
        if "base_rss_mib" in result:  # the model's share of the peak after this prompt (peaks only grow)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            result[f"model_peak_{label}_mib"] = round(peak - result["base_rss_mib"], 1)
    if case == "llamacpp":
        result["long_prompt_tokens"] = engine.prompt_tokens(prompts()["long"])
    elif case.startswith("hf"):
        result["long_prompt_tokens"] = hf.prompt_tokens(prompts()["long"])
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _rss_mib() -> float:
    """Resident memory now (Linux), to subtract the runtime's own share from the peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def paired(new_tokens: int, pairs: int) -> None:
    """medchat's llama.cpp engine and bare `llama_cpp.Llama` in one process, called alternately,
    so that both see the same machine load: the fairest speed comparison on a shared machine."""
    from llama_cpp import Llama

    from chatbot.engines.llamacpp import LlamaCppEngine, bundled_model_path

    threads = os.cpu_count() or 1
    path = bundled_model_path()
    engine = LlamaCppEngine(path, n_ctx=4096, n_threads=threads)
    bare = Llama(model_path=str(path), n_ctx=4096, n_threads=threads, seed=0, verbose=False)
    params = GenerationParams(max_new_tokens=new_tokens, temperature=0.0)
    messages = prompts()["short"]

    def run_bare() -> Any:
        return bare_llama_stream(bare, messages, params)

    ratios, rates = [], {"llamacpp": [], "llamacpp-bare": []}  # type: ignore[var-annotated]
    order = [
        ("llamacpp", engine._llm, lambda: engine.stream(messages, params)),
        ("llamacpp-bare", bare, run_bare),
    ]
    for i in range(pairs + 1):
        pair = {}
        for name, llm, gen in order if i % 2 else order[::-1]:  # who goes first alternates
            llm.reset()
            t0 = time.perf_counter()
            text = "".join(gen())
            pair[name] = len(llm.tokenize(text.encode(), add_bos=False, special=False)) / (
                time.perf_counter() - t0
            )
        if i:  # the first pair warms up
            ratios.append(pair["llamacpp"] / pair["llamacpp-bare"])
            for name, rate in pair.items():
                rates[name].append(rate)
    print(
        f"paired, {pairs} pairs, short prompt, {new_tokens} tokens, tokens/s including prefill (medians): "
        f"medchat {statistics.median(rates['llamacpp']):.1f}, "
        f"bare {statistics.median(rates['llamacpp-bare']):.1f}, "
        f"medchat/bare {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
        f"medchat/bare of the summed times {_sum_ratio(rates):.3f}, bootstrap 95% interval "
        f"{' to '.join(f'{x:.3f}' for x in _bootstrap(rates))}"
    )


def _sum_ratio(rates: dict[str, list[float]], pick: list[int] | None = None) -> float:
    """Overall speed ratio: total time bare / total time medchat for the same token counts."""
    idx = pick if pick is not None else list(range(len(rates["llamacpp"])))
    return sum(1 / rates["llamacpp-bare"][i] for i in idx) / sum(1 / rates["llamacpp"][i] for i in idx)


def _bootstrap(rates: dict[str, list[float]], draws: int = 2000) -> tuple[float, float]:
    import random

    rng = random.Random(0)
    n = len(rates["llamacpp"])
    stats = sorted(_sum_ratio(rates, [rng.randrange(n) for _ in range(n)]) for _ in range(draws))
    return stats[int(0.025 * draws)], stats[int(0.975 * draws) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each prompt per process")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of the llama.cpp pair")
    parser.add_argument("--models-dir", type=Path, default=Path("~/.medchat/models").expanduser())
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--paired", type=int, metavar="N", help="only: N alternating llama.cpp pairs")
    args = parser.parse_args()
    if args.paired:
        paired(args.new_tokens, args.paired)
        return
    if args.case:
        print(json.dumps(run_case(args.case, args.new_tokens, args.repeats, args.models_dir)), flush=True)
        return
    cases = args.cases.split(",")
    pair = [c for c in cases if c.startswith("llamacpp")]
    plan = [c for r in range(args.rounds) for c in (pair if r % 2 == 0 else pair[::-1])]  # order alternates
    # hf-nf4 twice: the first load may quantize and keep a copy (see the transformers engine)
    plan += [c for c in cases if not c.startswith("llamacpp") for _ in range(1 + (c == "hf-nf4"))]
    runs: dict[str, list[dict[str, Any]]] = {}
    for case in plan:
        cmd = [sys.executable, __file__, "--case", case, "--new-tokens", str(args.new_tokens)]
        cmd += ["--repeats", str(args.repeats), "--models-dir", str(args.models_dir)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(f"{case} failed:\n{done.stderr[-3000:]}", flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        if row.get("quantized_now"):
            peak = row["peak_rss_mib"]
            print(f"(hf-nf4 quantized the model in that run: peak RSS {peak} MiB; not counted)")
            continue
        runs.setdefault(case, []).append(row)
    cols = [
        "short_ttft_s",
        "short_tok_s",
        "long_ttft_s",
        "long_tok_s",
        "weights_mib",
        "peak_rss_mib",
        "model_peak_short_mib",
        "model_peak_long_mib",
        "load_s",
    ]
    print(f"\n{os.cpu_count()} CPU threads, greedy, up to {args.new_tokens} new tokens, medians\n")
    print("| engine | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    merged = {}
    for case, rows in runs.items():
        merged[case] = {c: statistics.median(r.get(c, float("nan")) for r in rows) for c in cols}
        print(f"| {case} | " + " | ".join(f"{merged[case][c]:g}" for c in cols) + " |")
    if "llamacpp" in merged and "llamacpp-bare" in merged:
        for label in ("short", "long"):
            a, b = merged["llamacpp"][f"{label}_tok_s"], merged["llamacpp-bare"][f"{label}_tok_s"]
            print(f"\nllamacpp vs bare, {label} prompt: {100 * (a / b - 1):+.1f}% tokens/s", end="")
    if "hf-fp32" in merged and "hf-nf4" in merged:
        for col in ("weights_mib", "model_peak_short_mib", "model_peak_long_mib", "peak_rss_mib"):
            ratio = merged["hf-nf4"][col] / merged["hf-fp32"][col]
            print(f"\nnf4 / fp32 {col}: {100 * ratio:.0f}% (target <= 35%)", end="")
    print()


if __name__ == "__main__":
    main()
