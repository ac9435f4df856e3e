"""The model to train: found like the transformers engine finds it, loaded for LoRA or QLoRA.

A GGUF base (the bundled SmolLM2 by default) is turned into a transformers folder once by the
engine's own `gguf_to_folder`; a folder with config.json is used as it is; a hub id only when
the user names one. On a CUDA GPU the base loads 4-bit (nf4, QLoRA); on a CPU in float32.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.training import BaseModelError, TrainingError

if TYPE_CHECKING:
    from chatbot.settings import Settings

log = logging.getLogger(__name__)

_HASH_SUFFIXES = (".safetensors", ".bin", ".gguf")


@dataclass
class BaseModel:
    source: str
    """A transformers folder, or a hub id."""
    label: str
    """What the user named (the GGUF file, the folder or the hub id)."""
    sha256: str
    gguf: Path | None = None
    """The GGUF file the folder was made from, if any: the trained model can be written back as one."""
    local: bool = True


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    device: str
    qlora: bool
    dtype: str
    notes: list[str] = field(default_factory=list)
    """Warnings for the user (e.g. QLoRA asked for without a GPU)."""


def file_sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def resolve_base(base: str | None, settings: Settings) -> BaseModel:
    """Where the weights to train come from; a clear error when they cannot be trained."""
    from chatbot.engines.llamacpp import bundled_model_path

    gen = settings.generation
    if base is None and gen.model_id:
        return BaseModel(gen.model_id, gen.model_id, "", None, local=False)
    path = Path(base).expanduser() if base else (gen.model_path or bundled_model_path())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BaseModelError(
                f"{path} has no config.json, so it is not a transformers model folder: point --base at a "
                "folder with config.json and safetensors weights, a GGUF file, or a hub id"
            )
        weights = [p for p in path.iterdir() if p.suffix in _HASH_SUFFIXES and p.is_file()]
        return BaseModel(str(path), str(path), file_sha256(weights), None)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise BaseModelError(
                f"{path} is neither a GGUF file nor a transformers model folder: point --base at one of them"
            )
        _check_gguf(path)
        return BaseModel("", str(path), file_sha256([path]), path)  # turned into a folder by `prepare`
    if base and not base.startswith((".", "/", "~")) and base.count("/") == 1 and not path.suffix:
        return BaseModel(base, base, "", None, local=False)  # a hub id, e.g. HuggingFaceTB/SmolLM2-135M
    raise BaseModelError(f"no model at {path}: point --base at a GGUF file, a model folder or a hub id")


def _cannot(path: Path, why: str) -> BaseModelError:
    return BaseModelError(
        f"cannot train on {path}: {why}. A GGUF holds quantized inference weights only; point --base at the "
        "model's original transformers folder (config.json + safetensors) or its hub id"
    )


def _check_gguf(path: Path) -> None:
    """Cheap checks before the slow dequantization: a readable GGUF of an architecture transformers reads."""
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))
        field = reader.fields.get("general.architecture")
        arch = field.contents() if field is not None else None
    except Exception as e:
        raise _cannot(path, f"it is not a readable GGUF file ({type(e).__name__}: {e})") from e
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    except ImportError:  # pragma: no cover - moved in another transformers version: let the conversion say
        return
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise _cannot(path, f"transformers cannot dequantize its architecture {arch!r}")


def prepare(base: BaseModel, settings: Settings) -> BaseModel:
    """Make sure `base.source` is loadable: a GGUF base is dequantized into a folder (once, then reused)."""
    if not base.source and base.gguf is not None:
        base.source = _gguf_folder(base.gguf, settings)
    return base


def _gguf_folder(path: Path, settings: Settings) -> str:
    from chatbot.engines.transformers_engine import gguf_to_folder

    models = settings.models_dir
    models.mkdir(parents=True, exist_ok=True)
    try:
        return str(gguf_to_folder(path, models))
    except Exception as e:
        raise _cannot(path, f"transformers cannot turn this GGUF into trainable weights ({e})") from e


def choose_device(device: str, qlora: bool | None) -> tuple[str, bool, list[str]]:
    """(device, qlora, notes): QLoRA needs CUDA; without it LoRA trains in float32 on the CPU."""
    import torch

    cuda = torch.cuda.is_available()
    notes: list[str] = []
    if device == "cuda" and not cuda:
        raise TrainingError(
            f"--device cuda but torch {torch.__version__} sees no CUDA GPU: pass --device cpu "
            "(LoRA in float32; minutes for the bundled 135M model), or install a CUDA build of torch"
        )
    chosen = "cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu"
    if qlora and chosen != "cuda":
        notes.append(
            "QLoRA needs a CUDA GPU (bitsandbytes 4-bit training) and none is in use: training LoRA "
            "in float32 on the CPU instead, which is slower (fine for the bundled 135M model)"
        )
    use_qlora = chosen == "cuda" if qlora is None else (bool(qlora) and chosen == "cuda")
    return chosen, use_qlora, notes


def load(base: BaseModel, kind: str, *, device: str = "auto", qlora: bool | None = None) -> Loaded:
    """The base model and tokenizer ready for peft: 4-bit on CUDA with QLoRA, float32 on a CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    chosen, use_qlora, notes = choose_device(device, qlora)
    for note in notes:
        log.warning(note)
    if chosen == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": base.local}
    if chosen == "cuda":
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}  # one copy per process
    if use_qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(base.source, local_files_only=base.local)
        cls = AutoModelForSequenceClassification if kind == "reward" else AutoModelForCausalLM
        extra = {"num_labels": 1} if kind == "reward" else {}
        model = cls.from_pretrained(base.source, **kwargs, **extra)
    except OSError as e:
        raise BaseModelError(
            f"cannot load the base model {base.label!r} ({e}): point --base at a local model folder, "
            "a GGUF file, or a hub id that is cached on this machine"
        ) from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if use_qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    return Loaded(model, tokenizer, chosen, use_qlora, str(dtype).removeprefix("torch."), notes)
