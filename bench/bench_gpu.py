"""4-bit (nf4) versus bf16 Llama-family models on a CUDA GPU: tokens/s, time to first token, memory.

The weights are RANDOM: each shape is built from its config (SmolLM2-135M and a
Llama-3-8B-shaped config), initialised randomly on the GPU, saved once, then loaded back by
`from_pretrained` in bf16 or with `BitsAndBytesConfig` nf4 (double quantization, bf16
compute), exactly as medchat's transformers engine loads a model. Speed and memory do not
depend on the weight values; every run generates exactly `--new-tokens` tokens (EOS ignored),
greedy, batch 1, after one warm-up generation. Each case runs in its own process so
`torch.cuda.max_memory_allocated()` is that case's peak.

    python bench/bench_gpu.py                      # all shapes, bf16 and nf4
    python bench/bench_gpu.py --shapes smollm2-135m --new-tokens 64
    python bench/bench_gpu.py --engine-check DIR   # medchat's TransformersEngine on CUDA, DIR
                                                   # holding a tokenizer with a chat template

Needs a CUDA GPU, torch, transformers and bitsandbytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        vocab_size=49152,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        tie_word_embeddings=True,
    ),
    "llama3-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=128256,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    ),
}
PROMPTS = {"short": 24, "long": 1500}


def build_weights(shape: str, workdir: Path) -> Path:
    """Random bf16 weights for `shape`, saved once under `workdir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = workdir / shape
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=2)
    with torch.device("cuda"):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder, max_shard_size="50GB")
    del model
    torch.cuda.empty_cache()
    return folder


class _Clock:
    """A generate() streamer that notes when each token arrives (the first call is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def run_case(folder: Path, quant: str, new_tokens: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    quant_config = (
        BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        if quant == "nf4"
        else None
    )
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.bfloat16, quantization_config=quant_config, device_map="cuda"
    )
    model.eval()
    load_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "shape": folder.name,
        "quant": quant,
        "load_s": round(load_s, 2),
        "weights_mib": round(model.get_memory_footprint() / 2**20, 1),
        "after_load_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
    }
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    for label, length in PROMPTS.items():
        ids = torch.randint(3, vocab, (1, length), generator=gen).to("cuda")
        kwargs = dict(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            min_new_tokens=new_tokens,
            max_new_tokens=new_tokens,
            pad_token_id=0,
        )
        with torch.inference_mode():
            model.generate(**{**kwargs, "min_new_tokens": 4, "max_new_tokens": 4})  # warm-up
            torch.cuda.synchronize()
            start = time.perf_counter()
            model.generate(**{**kwargs, "min_new_tokens": 1, "max_new_tokens": 1})
            torch.cuda.synchronize()
            ttft = time.perf_counter() - start
            start = time.perf_counter()
            model.generate(**kwargs)
            torch.cuda.synchronize()
            whole = time.perf_counter() - start
            clock = _Clock()
            start = time.perf_counter()
            model.generate(**kwargs, streamer=clock)
            torch.cuda.synchronize()
        stamps = clock.times[1:]  # the first put() is the prompt
        result[f"{label}_prompt_tokens"] = length
        result[f"{label}_ttft_s"] = round(ttft, 4)
        result[f"{label}_tok_s"] = round((new_tokens - 1) / (whole - ttft), 1)
        # a streamer copies every token to the host as it comes, as the medchat engine does
        result[f"{label}_streamed_ttft_s"] = round(stamps[0] - start, 4)
        result[f"{label}_streamed_tok_s"] = round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 1)
    result["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def engine_check(template_dir: Path, workdir: Path) -> dict[str, Any]:
    """medchat's TransformersEngine on CUDA: defaults to nf4, streams, and explains a GPU OOM."""
    import shutil

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from chatbot.engines.base import ChatMessage, GenerationParams
    from chatbot.engines.transformers_engine import TransformersEngine

    folder = workdir / "smollm2-135m-chat"
    if not folder.is_dir():
        shutil.copytree(build_weights("smollm2-135m", workdir), folder)
        for f in template_dir.iterdir():
            if f.name != "config.json":
                shutil.copy(f, folder / f.name)
    out: dict[str, Any] = {}
    engine = TransformersEngine(folder, device="auto")
    layer = engine.model.model.layers[0].mlp.down_proj
    out["auto_quantization"] = engine.quantization
    out["layer_type"] = type(layer).__name__
    out["device"] = str(engine.model.device)
    out["compute_dtype"] = str(getattr(layer, "compute_dtype", None))
    messages = [ChatMessage("user", "What is high blood pressure?")]
    t0 = time.perf_counter()
    pieces = list(engine.stream(messages, GenerationParams(max_new_tokens=32)))
    out["stream_pieces"] = len(pieces)
    out["stream_s"] = round(time.perf_counter() - t0, 3)
    stream: Any = engine.stream(messages, GenerationParams(max_new_tokens=2000))  # a generator
    next(stream)
    t0 = time.perf_counter()
    stream.close()
    out["cancel_s"] = round(time.perf_counter() - t0, 3)
    del engine
    torch.cuda.empty_cache()
    # a bf16 8B model in a GPU capped at 8 GiB must fail with the medchat message
    big = build_weights("llama3-8b", workdir)
    for f in template_dir.iterdir():
        if f.name not in ("config.json", "generation_config.json"):
            shutil.copy(f, big / f.name)
    torch.cuda.set_per_process_memory_fraction(8 * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    try:
        TransformersEngine(big, device="cuda", quantization="none")
        out["oom_error"] = "no error"
    except Exception as e:
        out["oom_error"] = f"{type(e).__module__}.{type(e).__name__}: {e}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--quants", default="bf16,nf4")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medchat-gpu-bench"))
    parser.add_argument("--case", nargs=2, metavar=("SHAPE", "QUANT"), help=argparse.SUPPRESS)
    parser.add_argument("--engine-check", type=Path, metavar="TOKENIZER_DIR")
    args = parser.parse_args()
    if args.engine_check:
        print(json.dumps(engine_check(args.engine_check, args.workdir)), flush=True)
        return
    if args.case:
        shape, quant = args.case
        print(json.dumps(run_case(args.workdir / shape, quant, args.new_tokens)), flush=True)
        return
    import torch

    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}, random weights", flush=True)
    rows = []
    for shape in args.shapes.split(","):
        build_weights(shape, args.workdir)
        torch.cuda.empty_cache()
        for quant in args.quants.split(","):
            cmd = [sys.executable, __file__, "--case", shape, quant, "--new-tokens", str(args.new_tokens)]
            cmd += ["--workdir", str(args.workdir)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"{shape} {quant} failed:\n{done.stderr[-3000:]}", flush=True)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    cols = [
        "shape",
        "quant",
        "weights_mib",
        "peak_mib",
        "short_ttft_s",
        "short_tok_s",
        "short_streamed_tok_s",
    ]
    cols += ["long_ttft_s", "long_tok_s", "long_streamed_tok_s", "load_s"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")


if __name__ == "__main__":
    main()
