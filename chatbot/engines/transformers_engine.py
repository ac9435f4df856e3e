"""transformers engine: any Llama-family model, optionally 4-bit (nf4) or 8-bit with bitsandbytes.

The model comes from a local folder, a GGUF file (dequantized by transformers once and kept
under `models_dir`, so bitsandbytes can quantize it), or a hub id when the user sets one.
Generation runs in a worker thread feeding a `TextIteratorStreamer`; closing the stream sets
an event that a stopping criterion checks after every token, so the work stops at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from chatbot.engines.base import ChatMessage, GenerationParams, StopFilter
from chatbot.engines.llamacpp import bundled_model_path
from chatbot.errors import (
    DependencyMissingError,
    DeviceError,
    ModelNotFoundError,
    OutOfMemoryError,
    PromptTooLongError,
)

log = logging.getLogger(__name__)

Quantization = Literal["auto", "nf4", "int8", "none"]
Device = Literal["auto", "cpu", "cuda"]
ComputeDtype = Literal["auto", "bfloat16", "float16", "float32"]

_SMALLER = {
    "none": "MEDCHAT_GENERATION__QUANTIZATION=nf4 (or int8)",
    "int8": "MEDCHAT_GENERATION__QUANTIZATION=nf4",
    "nf4": "a smaller model, or MEDCHAT_GENERATION__DEVICE=cpu",
}


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:  # pragma: no cover - both are core dependencies
        raise DependencyMissingError(
            "the transformers engine needs torch and transformers: run `pip install -e .`"
        ) from e
    return torch


def _is_oom(torch: Any, e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def gguf_to_folder(gguf: Path, models_dir: Path) -> Path:
    """A transformers folder made from a GGUF file, built once and reused.

    transformers dequantizes GGUF weights into float32 but cannot save such a model
    directly; copying its weights into a fresh model of the same config can.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    stat = gguf.stat()
    key = hashlib.sha1(f"v1|{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    folder = models_dir / f"{gguf.stem}-{key}"
    if (folder / "config.json").is_file():
        return folder
    log.info("dequantizing %s into %s (once)", gguf, folder)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fields = loaded.config.to_dict()
    fields.pop("quantization_config", None)  # the folder holds plain float32 weights
    config = AutoConfig.for_model(**fields)
    fresh = AutoModelForCausalLM.from_config(config, dtype="float32")
    fresh.load_state_dict(loaded.state_dict())
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.replace(folder)
    except OSError:  # another process (a second `accelerate launch` worker) finished first: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "config.json").is_file():
            raise
    return folder


def _quantized_folder(source: Path, quantization: str, compute_dtype: str, models_dir: Path) -> Path:
    """Where a bitsandbytes-quantized copy of the local model folder `source` is kept."""
    kinds = (".json", ".safetensors", ".bin")
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix in kinds)
    stamp = "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    key = f"q1|{source.resolve()}|{quantization}|{compute_dtype}|{stamp}"
    return models_dir / f"{source.name}-{quantization}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _is_quantized(folder: Path) -> bool:
    try:
        return "quantization_config" in json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _save_quantized(model: Any, tokenizer: Any, folder: Path) -> None:
    """Keep a quantized copy so that later loads skip the full-precision weights; best effort."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.replace(folder)
        log.info("kept the quantized model in %s for the next load", folder)
    except Exception as e:  # a read-only or full disk costs only the next load's memory
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("could not keep a quantized copy in %s (%s); the next load quantizes again", folder, e)


class TransformersEngine:
    """A causal LM run by transformers, with its own chat template; one generation at a time."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        model_id: str | None = None,
        quantization: Quantization = "auto",
        device: Device = "auto",
        compute_dtype: ComputeDtype = "auto",
        n_ctx: int = 4096,
        n_threads: int | None = None,
        models_dir: Path | None = None,
    ) -> None:
        torch = _import_torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        cuda = torch.cuda.is_available()
        if device == "cuda" and not cuda:
            raise DeviceError(
                "MEDCHAT_GENERATION__DEVICE=cuda but torch sees no CUDA GPU (torch "
                f"{torch.__version__}): set MEDCHAT_GENERATION__DEVICE=cpu (or auto), "
                "or install a CUDA build of torch and the NVIDIA driver"
            )
        self.device = "cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu"
        if quantization == "auto":
            quantization = "nf4" if self.device == "cuda" else "none"
        self.quantization: str = quantization
        if compute_dtype == "auto":
            if self.device == "cuda":
                compute_dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
            else:
                compute_dtype = "float32"
        dtype = getattr(torch, compute_dtype)
        if n_threads:
            torch.set_num_threads(n_threads)

        if models_dir is None:  # only what the settings say: `create_engine` passes Settings.models_dir
            from chatbot.settings import get_settings

            models_dir = get_settings().models_dir
        models_dir = Path(models_dir).expanduser()
        source, load_kwargs, label = self._resolve(model_path, model_id, models_dir)
        quant_config = self._quant_config(quantization, dtype)
        # On a CPU, quantizing while loading holds the full-precision weights too (peak RSS 1.5 GB
        # for a 135M model, 0.7 GB from a quantized copy): so local models are quantized once and
        # the copy is loaded from then on. On a GPU bitsandbytes quantizes on the device instead.
        keep: Path | None = None
        local = not model_id and not _is_quantized(Path(source))
        if quant_config is not None and self.device == "cpu" and local:
            keep = _quantized_folder(Path(source), quantization, compute_dtype, models_dir)
            if (keep / "config.json").is_file():
                source, quant_config, keep = str(keep), None, None  # its config.json holds the quantization
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **load_kwargs)
            self.model: Any = AutoModelForCausalLM.from_pretrained(
                source,
                dtype=dtype,
                device_map="auto" if self.device == "cuda" else "cpu",
                # passing None would override a quantized copy's own quantization_config
                **({"quantization_config": quant_config} if quant_config is not None else {}),
                **load_kwargs,
            )
        except Exception as e:
            if _is_oom(torch, e) or "dispatched on the cpu or the disk" in str(e).lower():
                raise OutOfMemoryError(
                    f"{label} with quantization={quantization} does not fit in GPU memory: "
                    f"try {_SMALLER[quantization]}"
                ) from e
            if model_id and isinstance(e, OSError):
                offline = os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0")
                raise ModelNotFoundError(
                    f"cannot load hub model {model_id!r}"
                    + (" (HF_HUB_OFFLINE is set)" if offline else " (not cached and the hub is unreachable)")
                    + ": download it while online, or set MEDCHAT_GENERATION__MODEL_PATH to a local "
                    "folder or GGUF file and unset MEDCHAT_GENERATION__MODEL_ID"
                ) from e
            raise
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            _save_quantized(self.model, self.tokenizer, keep)
        self.model.eval()
        if self.model.generation_config.pad_token_id is None:
            self.model.generation_config.pad_token_id = self.tokenizer.eos_token_id
        self.name = f"transformers:{label}"
        self.n_ctx = n_ctx
        self._lock = threading.Lock()  # one generation at a time per loaded model

    @staticmethod
    def _resolve(
        model_path: Path | None, model_id: str | None, models_dir: Path
    ) -> tuple[str, dict[str, Any], str]:
        if model_id:
            return model_id, {}, model_id
        path = Path(model_path).expanduser() if model_path else bundled_model_path()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelNotFoundError(
                    f"{path} has no config.json, so it is not a transformers model folder: "
                    "check MEDCHAT_GENERATION__MODEL_PATH"
                )
            return str(path), {"local_files_only": True}, path.name
        if path.is_file() and path.suffix.lower() == ".gguf":
            models_dir.mkdir(parents=True, exist_ok=True)
            return str(gguf_to_folder(path, models_dir)), {"local_files_only": True}, path.name
        raise ModelNotFoundError(
            f"model {path} not found (expected a model folder or a .gguf file): "
            "check MEDCHAT_GENERATION__MODEL_PATH, or set MEDCHAT_GENERATION__MODEL_ID to a hub id"
        )

    @staticmethod
    def _quant_config(quantization: str, dtype: Any) -> Any:
        if quantization == "none":
            return None
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as e:
            raise DependencyMissingError(
                f"quantization={quantization} needs bitsandbytes: run `pip install bitsandbytes`, "
                "or set MEDCHAT_GENERATION__QUANTIZATION=none"
            ) from e
        if quantization == "int8":
            # said once per layer and token on a CPU, where the int8 matmul computes in float16
            warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )

    def memory_footprint(self) -> int:
        """Bytes taken by the model's weights and buffers."""
        return int(self.model.get_memory_footprint())

    def _encode(self, messages: Sequence[ChatMessage]) -> Any:
        return self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return int(self._encode(messages)["input_ids"].shape[-1])

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        torch = self._torch
        cancel = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full(
                    (input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device
                )

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []
        prompt_len = 0
        running = threading.Event()

        def work() -> None:
            # The lock is taken here, in the worker, never in the caller's generator: a stream that is
            # abandoned rather than closed must not keep the model from everyone else.
            nonlocal prompt_len
            try:
                with self._lock:
                    if cancel.is_set():
                        return
                    running.set()
                    inputs = self._encode(messages).to(self.model.device)
                    prompt_len = int(inputs["input_ids"].shape[-1])
                    room = self.n_ctx - prompt_len
                    if room < 1:
                        raise PromptTooLongError(
                            f"the prompt takes {prompt_len} tokens, more than the context window of "
                            f"{self.n_ctx}: raise MEDCHAT_GENERATION__N_CTX or use fewer passages"
                        )
                    sampling = params.temperature > 0
                    kwargs: dict[str, Any] = {
                        **inputs,
                        "max_new_tokens": min(params.max_new_tokens, room),
                        "do_sample": sampling,
                        "repetition_penalty": params.repeat_penalty,
                        "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
                        "streamer": streamer,
                    }
                    if sampling:
                        kwargs.update(
                            temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or None
                        )
                    else:  # silence the model's own sampling defaults under greedy decoding
                        kwargs.update(temperature=None, top_p=None, top_k=None)
                    if params.stop:
                        kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
                    torch.manual_seed(params.seed)
                    with torch.inference_mode():
                        self.model.generate(**kwargs)
            except BaseException as e:
                failure.append(e)
            finally:
                streamer.end()  # wake the consumer (a second end after generate's own is harmless)

        worker = threading.Thread(target=work, name="medchat-generate", daemon=True)
        worker.start()
        stop = StopFilter(params.stop)
        try:
            for piece in streamer:
                shown = stop.feed(piece)
                if shown:
                    yield shown
                if stop.stopped:
                    break
            else:
                tail = stop.flush()
                if tail:
                    yield tail
        finally:
            cancel.set()  # the worker stops at its next token and releases the lock
            if running.is_set():  # (a worker still waiting for the lock skips its turn instead)
                worker.join()
        if failure:
            e = failure[0]
            if _is_oom(torch, e):
                raise OutOfMemoryError(
                    f"out of GPU memory while generating ({prompt_len} prompt tokens): lower "
                    "MEDCHAT_GENERATION__N_CTX or MEDCHAT_RETRIEVAL__K, or try "
                    f"{_SMALLER[self.quantization]}"
                ) from e
            raise e
