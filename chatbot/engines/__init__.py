"""Generation engines behind one interface, chosen by settings.

`get_engine()` loads a model once per process and hands the same instance to
every caller (all UI users share it; each engine serialises its own calls).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from chatbot.engines.base import ChatMessage, Engine, GenerationParams, complete

if TYPE_CHECKING:
    from chatbot.settings import GenerationSettings

__all__ = ["ChatMessage", "Engine", "GenerationParams", "complete", "create_engine", "get_engine"]

_cache: dict[str, Engine] = {}
_cache_lock = threading.Lock()


def create_engine(gen: GenerationSettings) -> Engine:
    """A new engine for these settings (no caching)."""
    if gen.engine == "fake":
        from chatbot.engines.fake import FakeEngine

        return FakeEngine()
    from chatbot.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(gen.model_path, n_ctx=gen.n_ctx, n_threads=gen.n_threads, seed=gen.seed)


def get_engine(gen: GenerationSettings) -> Engine:
    """The process-wide engine for these settings, loaded on first use."""
    key = gen.model_dump_json(include={"engine", "model_path", "n_ctx", "n_threads"})
    with _cache_lock:
        if key not in _cache:
            _cache[key] = create_engine(gen)
        return _cache[key]
