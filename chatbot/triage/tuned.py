"""The triage encoder fine-tuned with low-rank adapters: the bundled MiniLM with the adapters merged in.

The classifier file (`tuned.npz`, written by `python -m chatbot.triage.tune`) holds, beside the head,
one pair of float16 factors (A: rank x in, B: out x rank, already scaled) per adapted linear layer.
At load each layer's weight becomes W + B @ A, in a private copy of the bundled encoder (the
retrieval embedder stays as it is), so nothing but torch and sentence-transformers is needed at run
time. The tuned vector is a second encoder pass over the message.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatbot.triage.model import TriageModelError

TUNED_FILE = Path(__file__).resolve().parent / "tuned.npz"
TUNE = "`python -m chatbot.triage.train --encoder tuned` (about 40 minutes on 2 CPU cores)"
SUFFIX = "+triage-lora-"


def adapter_id(base: str, digest: str) -> str:
    """The encoder id a tuned head names: the base encoder and a digest of its adapters."""
    return f"{base}{SUFFIX}{digest}"


def merge(model: Any, factors: dict[str, tuple[Any, Any]]) -> None:
    """Add B @ A to the weight of each named linear layer of `model` (a transformers BertModel)."""
    import torch

    modules = dict(model.named_modules())
    for name, (a, b) in factors.items():
        layer = modules.get(name)
        weight = getattr(layer, "weight", None)
        if weight is None or tuple(weight.shape) != (b.shape[0], a.shape[1]):
            raise TriageModelError(
                f"the triage adapters do not fit the bundled encoder (layer {name}): retrain them with {TUNE}"
            )
        with torch.no_grad():
            delta = torch.from_numpy(b.astype("float32")) @ torch.from_numpy(a.astype("float32"))
            weight.add_(delta.to(weight.dtype))


class TunedEncoder:
    """Unit-length sentence vectors from the bundled MiniLM with the triage adapters merged in."""

    def __init__(self, factors: dict[str, tuple[Any, Any]], encoder_id: str, base: str) -> None:
        from ingestion.embedding import MINILM_ID, PACKAGED_MINILM, SentenceTransformerEmbedder

        if base != MINILM_ID:
            raise TriageModelError(
                f"the triage adapters were trained on {base}, but the bundled encoder is {MINILM_ID}: "
                f"retrain them with {TUNE}"
            )
        inner = SentenceTransformerEmbedder(PACKAGED_MINILM)
        merge(inner._model[0].auto_model, factors)
        self._inner = inner
        self.id = encoder_id
        self.dim = inner.dim
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> Any:
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            return self._inner.embed_query(text)


_shared: dict[tuple[str, str, str], TunedEncoder] = {}
_shared_lock = threading.Lock()


def shared_tuned_encoder(factors: dict[str, tuple[Any, Any]], encoder_id: str, base: str) -> TunedEncoder:
    """The process-wide tuned encoder for these adapters: the chat and each Compare variant's chain
    share one merged copy of MiniLM (~90 MB), not one each. Keyed by the factors themselves, so a
    file with other adapters under the same name still gets (and is checked as) its own."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(factors):
        a, b = factors[name]
        digest.update(name.encode() + a.tobytes() + b.tobytes())
    key = (encoder_id, base, digest.hexdigest())
    with _shared_lock:
        if key not in _shared:
            _shared[key] = TunedEncoder(factors, encoder_id, base)
        return _shared[key]
