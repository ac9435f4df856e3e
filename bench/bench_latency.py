"""Time to first token of the whole chain, per llama.cpp configuration, paired and interleaved.

Every case answers the same sample-corpus questions through `Chain.stream` (gate, retrieval,
prompt, generation: what the chat page and `medchat ask` run), on the bundled SmolLM2 weights,
greedy. Cases alternate question by question, and the order of the cases rotates every question,
so a busy machine slows them alike. TTFT is from `Chain.stream()` to the first piece of the
model's answer; decode tokens/s is after the first piece.

Cases:

  before        the engine as it was: the bundled Q4_1 file, llama-cpp-python's own prefix reuse
                (whatever the previous request left in the cache: answers depend on it)
  q4_1          medchat's engine, the bundled Q4_1 file (fixed prefix evaluated once, then restored)
  q4_0          the same weights requantized to Q4_0 (llama.cpp repacks Q4_0 for AVX2 at load)
  iq4_nl        requantized to IQ4_NL (also repacked)
  q8_0          requantized to Q8_0 (8-bit: the Q4_1 values kept almost exactly)
  q4_0-b256     q4_0 with n_batch 256 (and so n_ubatch)
  q4_0-t1       q4_0 with one thread (the machine has two cores)

`--lookup`: prompt-lookup decoding instead (llama-cpp-python's `LlamaPromptLookupDecoding`, drafts
of 2 and 10 tokens) against plain decoding, on bare `llama_cpp.Llama` objects with the Q4_0 file and
the chain's prompts. It needs `logits_all` (scores for every prompt position) and, in
llama-cpp-python 0.3.36, a batch as long as the prompt: with the default 512 it fails with a
numpy broadcast error once a prompt is longer.

Quality, with `--quality`: per case, the greedy answers' agreement with the Q4_1 file's (exact
match, and the share of the first 16 tokens that match), the share of answers citing a passage,
invalid citations, and sentences the check step found unsupported.

    python bench/bench_latency.py                                  # before, q4_1, q4_0; 3 rounds
    python bench/bench_latency.py --cases before,q4_0 --rounds 5 --quality
    python bench/bench_latency.py --cases q4_1,q4_0,iq4_nl,q8_0 --quality --new-tokens 128
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import bare_llama_stream  # noqa: E402

QUESTIONS = [
    "How is type 2 diabetes diagnosed and what are the HbA1c thresholds?",
    "What blood pressure counts as hypertension in adults?",
    "What are the side effects of statins?",
    "How long should iron tablets be taken for iron deficiency anaemia?",
    "How is asthma treated in adults?",
    "What is a normal INR for someone taking warfarin?",
    "When is bowel cancer screening offered?",
    "How does metformin work and what are its common side effects?",
    "What lifestyle changes help with gout?",
    "How is an underactive thyroid treated?",
    "What are the symptoms of atrial fibrillation?",
    "How is osteoporosis diagnosed?",
    "What does an eGFR result mean?",
    "How are migraines treated?",
    "What vaccines are recommended for adults over 65?",
    "How is coeliac disease diagnosed?",
    "What is the difference between a cold and the flu?",
    "How should inhaled corticosteroids be used?",
    "What are the treatments for psoriasis?",
    "How is irritable bowel syndrome managed?",
    "What helps people stop smoking?",
    "How is heart failure treated?",
    "When are antibiotics needed for a urinary tract infection?",
    "What are the common side effects of SSRIs?",
]

CASES = ("before", "q4_1", "q4_0", "iq4_nl", "q8_0", "q4_0-b256", "q4_0-t1")


class LegacyEngine:
    """The llama.cpp engine as it was before prefix handling: `create_chat_completion` with
    llama-cpp-python's own reuse of the previous prompt's cached prefix."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._llm = engine._llm
        self.name, self.quantization, self.n_ctx = engine.name, engine.quantization, engine.n_ctx
        self._lock = threading.Lock()

    def prompt_tokens(self, messages: Sequence[Any]) -> int:
        return int(self._engine.prompt_tokens(messages))

    def stream(self, messages: Sequence[Any], params: Any) -> Iterator[str]:
        with self._lock:
            yield from bare_llama_stream(self._llm, messages, params)


def build_engine(case: str, models_dir: Path) -> Any:
    from chatbot.engines.llamacpp import LlamaCppEngine, bundled_model_path, derive_gguf

    base = bundled_model_path()
    kind = case.split("-")[0]
    path = base if kind in ("before", "q4_1") else derive_gguf(base, models_dir, kind.upper())
    kwargs: dict[str, Any] = {"n_ctx": 4096}
    if case.endswith("-b256"):
        kwargs["n_batch"] = 256
    if case.endswith("-t1"):
        kwargs["n_threads"] = 1
    engine = LlamaCppEngine(path, **kwargs)
    return LegacyEngine(engine) if case == "before" else engine


def ensure_index(home: Path) -> None:
    if (home / "index").exists():
        return
    from chatbot.settings import get_settings
    from ingestion.pipeline import ingest

    print(f"indexing the sample corpus into {home} ...", flush=True)
    settings = get_settings()
    ingest([settings.sample_corpus], settings=settings)


class Clocked:
    """Wraps an engine to note when its first piece arrives and what it generated."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name, self.quantization, self.n_ctx = engine.name, engine.quantization, engine.n_ctx
        self.first: float | None = None
        self.last: float | None = None
        self.pieces: list[str] = []

    def prompt_tokens(self, messages: Sequence[Any]) -> int:
        return int(self.engine.prompt_tokens(messages))

    def stream(self, messages: Sequence[Any], params: Any) -> Iterator[str]:
        for piece in self.engine.stream(messages, params):
            now = time.perf_counter()
            self.first = self.first or now
            self.last = now
            self.pieces.append(piece)
            yield piece


def timed_answer(chain: Any, question: str, params: Any, count: Any) -> dict[str, Any]:
    clock: Clocked = chain.engine
    clock.first = clock.last = None
    clock.pieces = []
    t0 = time.perf_counter()
    answer = chain.answer(question) if params is None else _answer(chain, question, params)
    tokens = count("".join(clock.pieces))
    first, last = clock.first, clock.last
    decode = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else float("nan")
    return {
        "ttft": (first - t0) if first else float("nan"),
        "decode_tps": decode,
        "text": answer.text,
        "tokens": tokens,
        "cited": bool(answer.cited),
        "invalid": len(answer.invalid_citations),
        "unsupported": len(answer.unsupported),
        "abstained": answer.abstained,
        "emergency": answer.emergency,
    }


def _answer(chain: Any, question: str, params: Any) -> Any:
    stream = chain.stream(question, params=params)
    for _ in stream:
        pass
    return stream.answer


def lookup_comparison(chain: Any, questions: list[str], path: Path, new_tokens: int) -> None:
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    prompts = []
    for q in questions:
        turn = chain.evidence(chain.admit(q))
        if not turn.done:
            chain.prompt_step(turn)
            prompts.append([{"role": m.role, "content": m.content} for m in turn.prompt.messages])
    drafts = {"plain": 0, "lookup-2": 2, "lookup-10": 10}
    llms: dict[str, Any] = {
        name: Llama(
            model_path=str(path),
            n_ctx=4096,
            n_batch=4096,
            n_ubatch=4096,
            verbose=False,
            draft_model=LlamaPromptLookupDecoding(num_pred_tokens=n) if n else None,
        )
        for name, n in drafts.items()
    }
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in drafts}
    texts: dict[str, list[str]] = {name: [] for name in drafts}
    for messages in prompts:
        for name, llm in llms.items():
            llm.reset()
            t0 = time.perf_counter()
            first = now = None
            out = []
            for chunk in llm.create_chat_completion(
                messages=messages, max_tokens=new_tokens, temperature=0, top_k=1, seed=0, stream=True
            ):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    now = time.perf_counter()
                    first = first or now
                    out.append(piece)
            n = len(llm.tokenize("".join(out).encode(), add_bos=False))
            timings[name].append((first - t0, (n - 1) / (now - first)) if first and now and n > 1 else (0, 0))
            texts[name].append("".join(out))
    print(f"\nprompt-lookup decoding, {len(prompts)} chain prompts, up to {new_tokens} new tokens, greedy")
    print(f"{'decoding':10} {'TTFT p50 s':>10} {'decode tok/s':>12} {'same text as plain':>19}")
    for name in drafts:
        same = sum(a == b for a, b in zip(texts[name], texts["plain"], strict=True))
        ttft = statistics.median(t for t, _ in timings[name])
        tps = statistics.median(r for _, r in timings[name])
        print(f"{name:10} {ttft:10.2f} {tps:12.1f} {same:>15} / {len(prompts)}")


def pct(values: list[float], q: float) -> float:
    xs = sorted(v for v in values if v == v)
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="before,q4_1,q4_0")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--home", type=Path, default=None, help="MEDCHAT_HOME with the sample corpus indexed")
    ap.add_argument("--quality", action="store_true", help="agreement and citation rates of greedy answers")
    ap.add_argument("--json", type=Path, default=None, help="write the raw results here")
    ap.add_argument("--lookup", action="store_true", help="measure prompt-lookup decoding instead")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        ap.error(f"unknown cases {sorted(unknown)}; choose from {', '.join(CASES)}")

    home = args.home or Path(tempfile.mkdtemp(prefix="medchat-bench-"))
    os.environ["MEDCHAT_HOME"] = str(home)
    from chatbot.chain import Chain
    from chatbot.engines.base import GenerationParams
    from chatbot.settings import get_settings

    ensure_index(home)
    settings = get_settings()
    models_dir = settings.models_dir
    first_chain = Chain(settings)
    retriever = first_chain.retriever
    if args.lookup:
        from chatbot.engines.llamacpp import bundled_model_path, derive_gguf

        q4_0 = derive_gguf(bundled_model_path(), models_dir, "Q4_0")
        lookup_comparison(first_chain, QUESTIONS[: args.questions], q4_0, args.new_tokens)
        return
    chains = {}
    for case in cases:
        t = time.perf_counter()
        engine = build_engine(case, models_dir)
        print(f"{case}: {engine.name} loaded in {time.perf_counter() - t:.1f} s", flush=True)
        chains[case] = Chain(settings, retriever=retriever, engine=Clocked(engine))
    count = raw_engine(chains[cases[0]]).count_tokens
    params = GenerationParams(max_new_tokens=args.new_tokens)
    questions = QUESTIONS[: args.questions]
    # warm-up: first retrieval loads the encoder and index; each engine answers once
    for case in cases:
        _answer(chains[case], questions[0], params)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
    answers: dict[str, dict[str, str]] = {c: {} for c in cases}
    for r in range(args.rounds):
        for i, q in enumerate(questions):
            shift = (r * len(questions) + i) % len(cases)
            for case in cases[shift:] + cases[:shift]:
                result = timed_answer(chains[case], q, params, count)
                result.update(round=r, question=q)
                runs[case].append(result)
                answers[case].setdefault(q, result["text"])
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    print(f"\n{len(questions)} questions x {args.rounds} rounds, greedy, up to {args.new_tokens} new tokens")
    print(f"{'case':14} {'TTFT p50 s':>10} {'p95 s':>7} {'decode tok/s':>12}")
    for case in cases:
        answered = [x for x in runs[case] if not x["abstained"] and not x["emergency"]]
        ttft = [x["ttft"] for x in answered]
        tps = [x["decode_tps"] for x in answered]
        print(f"{case:14} {pct(ttft, 0.5):10.2f} {pct(ttft, 0.95):7.2f} {statistics.median(tps):12.1f}")
    if args.quality:
        ref = answers.get("q4_1") or answers[cases[0]]
        head = f"{'same answer':>11} {'same 16 tok':>11} {'cited':>6} {'invalid':>7} {'unsupp.':>7}"
        print(f"\n{'case':14} {head}")
        for case in cases:
            first_round = [x for x in runs[case] if x["round"] == 0]
            same = sum(answers[case][q] == ref[q] for q in questions) / len(questions)
            prefix = []
            for q in questions:
                a, b = count_ids(chains, case, answers[case][q]), count_ids(chains, case, ref[q])
                n = min(16, len(b)) or 1
                prefix.append(sum(x == y for x, y in zip(a[:n], b[:n], strict=False)) / n)
            cited = sum(x["cited"] for x in first_round) / len(first_round)
            invalid = sum(x["invalid"] for x in first_round)
            unsupported = statistics.mean(x["unsupported"] for x in first_round)
            print(
                f"{case:14} {same:11.2f} {statistics.mean(prefix):11.2f} {cited:6.2f} {invalid:7d} "
                f"{unsupported:7.2f}"
            )
        repeat = {case: all(x["text"] == answers[case][x["question"]] for x in runs[case]) for case in cases}
        steady = ", ".join(f"{c} {'yes' if v else 'NO'}" for c, v in repeat.items())
        print("same answer in every round:", steady)
    if args.json:
        record = {"args": vars(args) | {"home": str(home), "json": str(args.json)}, "runs": runs}
        args.json.write_text(json.dumps(record, indent=1, default=str))


def raw_engine(chain: Any) -> Any:
    engine = chain.engine.engine
    return getattr(engine, "_engine", None) or engine


def count_ids(chains: dict[str, Any], case: str, text: str) -> list[int]:
    llm = raw_engine(chains[case])._llm
    return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


if __name__ == "__main__":
    main()
