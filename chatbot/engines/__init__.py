"""Generation engines behind one interface, chosen by settings.

`get_engine()` loads a model once per process and hands the same instance to
every caller (all UI users share it; each engine serialises its own calls). Where derived model
files are kept is the caller's `Settings.models_dir`, passed in: the engines never work out a home.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.engines.base import ChatMessage, Engine, GenerationParams, complete, fit_passages

if TYPE_CHECKING:
    from chatbot.settings import GenerationSettings

__all__ = [
    "ChatMessage",
    "Engine",
    "GenerationParams",
    "complete",
    "create_engine",
    "fit_passages",
    "get_engine",
]

# sampling settings travel with each request; every other generation setting picks the model
_PER_REQUEST = {"max_new_tokens", "temperature", "top_p", "top_k", "repeat_penalty", "seed"}

_cache: dict[str, Engine] = {}
_cache_lock = threading.Lock()


def create_engine(gen: GenerationSettings, *, models_dir: Path) -> Engine:
    """A new engine for these settings (no caching); derived model files go to `models_dir`
    (`Settings.models_dir`)."""
    if gen.engine == "fake":
        from chatbot.engines.fake import FakeEngine

        return FakeEngine()
    if gen.engine == "transformers":
        from chatbot.engines.transformers_engine import TransformersEngine

        return TransformersEngine(
            gen.model_path,
            model_id=gen.model_id,
            quantization=gen.quantization,
            device=gen.device,
            compute_dtype=gen.compute_dtype,
            n_ctx=gen.n_ctx,
            n_threads=gen.n_threads,
            models_dir=models_dir,
        )
    if gen.engine == "openai":
        from chatbot.engines.openai_compat import OpenAICompatEngine

        return OpenAICompatEngine(
            gen.base_url,
            model=gen.server_model,
            api_key_env=gen.api_key_env,
            timeout_s=gen.timeout_s,
            connect_timeout_s=gen.connect_timeout_s,
            retries=gen.retries,
            backoff_s=gen.backoff_s,
            extended_params=gen.extended_params,
            n_ctx=gen.n_ctx,
            health_interval_s=gen.health_interval_s,
            max_connections=gen.generations_at_once + 8,  # and the health checks beside them
        )
    from chatbot.engines.llamacpp import LlamaCppEngine, gguf_for

    return LlamaCppEngine(
        gguf_for(gen.model_path, gen.requantize, models_dir),
        n_ctx=gen.n_ctx,
        n_threads=gen.n_threads,
        n_batch=gen.n_batch,
        n_gpu_layers=gen.n_gpu_layers,
        seed=gen.seed,
    )


def get_engine(gen: GenerationSettings, *, models_dir: Path) -> Engine:
    """The process-wide engine for these settings, loaded on first use."""
    key = f"{gen.model_dump_json(exclude=_PER_REQUEST)} {models_dir}"
    with _cache_lock:
        if key not in _cache:
            _cache[key] = create_engine(gen, models_dir=models_dir)
        return _cache[key]
