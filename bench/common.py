"""What several benchmarks share (import as `bench.common`; the scripts put the repository on sys.path)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


def bare_llama_stream(llm: Any, messages: Sequence[Any], params: Any) -> Iterator[str]:
    """llama.cpp's own streamed chat completion, as text pieces: the baseline medchat's engine is
    measured against. Greedy (top_k 1) unless `params` sample, as the engine does."""
    chunks = llm.create_chat_completion(
        messages=[{"role": m.role, "content": m.content} for m in messages],
        max_tokens=params.max_new_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k if params.temperature > 0 else 1,
        repeat_penalty=params.repeat_penalty,
        seed=params.seed,
        stream=True,
    )
    for chunk in chunks:
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            yield piece
