"""The merged model as a GGUF that llama.cpp (medchat's default engine) serves on a CPU.

No converter ships in the installed packages (llama.cpp's `convert_hf_to_gguf.py` is not part of
`llama-cpp-python` or `gguf`), so when the base model came from a GGUF this writes the trained
model *into a copy of that GGUF*: same metadata, tokenizer and chat template; every tensor the
training changed is replaced by base + change, quantized with `gguf`'s own quantizer; the rest is
copied byte for byte. The change is computed in transformers' layout and mapped to GGUF's (with
llama's q/k row permutation); each mapped base tensor is checked against the GGUF's own before
anything is written, so a layout this code does not know fails clearly instead of writing garbage.
A base that was a transformers folder or a hub id has no GGUF to copy: then only the transformers
path is offered (convert `merged/` with llama.cpp's converter from a llama.cpp checkout).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.training import TrainingError

if TYPE_CHECKING:
    from chatbot.training.base import BaseModel

log = logging.getLogger(__name__)

GGUF_TYPES = ("f16", "f32", "q8_0", "q4_1", "q4_0", "q5_1")


class GGUFUnavailable(TrainingError):
    """No GGUF can be written for this model; the transformers path still works."""


def _permute(w: Any, n_head: int, n_head_kv: int | None) -> Any:
    """llama.cpp's row order for q/k projections (its converter permutes them for rotary embeddings)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def write_gguf(merged_dir: Path, base: BaseModel, out: Path, *, qtype: str = "f16") -> tuple[Path, float]:
    """Write `out`; returns it and the share of the trained change that survives quantization
    (1.0: all of it; the cosine between the change asked for and the change written)."""
    if base.gguf is None:
        raise GGUFUnavailable(
            f"the base {base.label} is not a GGUF, so there is no GGUF to carry the trained weights; serve "
            "merged/ with the transformers engine, or convert it with llama.cpp's convert_hf_to_gguf.py"
        )
    try:
        import gguf
        import numpy as np
        from safetensors.numpy import load_file
    except ImportError as e:  # pragma: no cover - gguf and safetensors are core dependencies
        raise GGUFUnavailable(f"writing a GGUF needs the gguf package ({e})") from e
    if qtype not in GGUF_TYPES:
        raise TrainingError(f"unknown --gguf-type {qtype!r}: use one of {', '.join(GGUF_TYPES)}")
    reader = gguf.GGUFReader(str(base.gguf))
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise GGUFUnavailable(
            f"writing a trained GGUF is implemented for llama-architecture GGUFs, and {base.gguf.name} is "
            f"{arch!r}: serve merged/ with the transformers engine"
        )
    n_blocks = int(_field(reader, "llama.block_count"))
    n_head = int(_field(reader, "llama.attention.head_count"))
    n_head_kv_raw = _field(reader, "llama.attention.head_count_kv")
    n_head_kv = int(n_head_kv_raw) if n_head_kv_raw is not None else None
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)

    def weights(folder: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in sorted(folder.glob("*.safetensors")):
            out.update(load_file(str(f)))
        return out

    before, after = weights(Path(base.source)), weights(merged_dir)
    target = getattr(gguf.GGMLQuantizationType, qtype.upper())
    replaced: dict[str, Any] = {}
    asked = written = dot = 0.0
    tensors = {t.name: t for t in reader.tensors}
    for key, new in after.items():
        old = before.get(key)
        if old is None or np.array_equal(old, new):
            continue
        gname = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if gname is None or gname not in tensors:
            raise GGUFUnavailable(f"the trained tensor {key} has no counterpart in {base.gguf.name}")
        t = tensors[gname]
        delta = new.astype(np.float32) - old.astype(np.float32)
        ref = old.astype(np.float32)
        if key.endswith("q_proj.weight"):
            delta, ref = _permute(delta, n_head, n_head), _permute(ref, n_head, n_head)
        elif key.endswith("k_proj.weight"):
            delta, ref = _permute(delta, n_head, n_head_kv), _permute(ref, n_head, n_head_kv)
        current = gguf.quants.dequantize(t.data, t.tensor_type).reshape(ref.shape)
        if float(np.abs(current - ref).max()) > 1e-4 * max(1.0, float(np.abs(ref).max())):
            raise GGUFUnavailable(
                f"{gname} in {base.gguf.name} does not match the base weights medchat trained from "
                "(an unknown layout): serve merged/ with the transformers engine"
            )
        data = gguf.quants.quantize(current + delta, target)
        got = gguf.quants.dequantize(data, target).reshape(ref.shape) - current
        asked += float((delta * delta).sum())
        written += float((got * got).sum())
        dot += float((delta * got).sum())
        replaced[gname] = data
    kept = dot / max((asked * written) ** 0.5, 1e-30) if replaced else 1.0

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = f.contents()
        if key == "general.name":
            value = f"{value} (medchat {out.stem})"
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, vtype, sub_type=sub)
    for t in reader.tensors:
        if t.name in replaced:
            writer.add_tensor(t.name, replaced[t.name], raw_dtype=target)
        else:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)  # numpy (byte) shape, as read
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    log.info(
        "wrote %s: %d trained tensors as %s, %.1f%% of the change kept", out, len(replaced), qtype, 100 * kept
    )
    return out, kept


# the GGUF names of the tensors that LoRA on attention and MLP changes
_TRAINED_GGUF = ("attn_q.", "attn_k.", "attn_v.", "attn_output.", "ffn_gate.", "ffn_up.", "ffn_down.")


def estimate_sizes(base: BaseModel, qtype: str, rank: int, targets: list[str]) -> dict[str, int]:
    """Bytes a run writes, estimated before it starts: `fp32` (the merged model, and the dequantized base
    folder), `gguf` (the trained GGUF) and `checkpoint` (one checkpoint: adapter and optimizer state)."""
    if base.gguf is None:
        folder = Path(base.source)
        fp32 = sum(p.stat().st_size for p in folder.glob("*.safetensors")) if folder.is_dir() else 0
        return {"fp32": fp32, "gguf": 0, "checkpoint": fp32 // 10}
    import gguf

    reader = gguf.GGUFReader(str(base.gguf))
    block, size = gguf.GGML_QUANT_SIZES[getattr(gguf.GGMLQuantizationType, qtype.upper())]
    elements = tensor_bytes = gguf_bytes = lora = 0
    for t in reader.tensors:
        n = int(t.n_elements)
        elements += n
        tensor_bytes += int(t.n_bytes)
        trained = any(part in t.name for part in _TRAINED_GGUF) and len(t.shape) == 2 and bool(targets)
        gguf_bytes += n * size // block if trained else int(t.n_bytes)
        if trained:
            lora += rank * (int(t.shape[0]) + int(t.shape[1]))
    metadata = max(0, base.gguf.stat().st_size - tensor_bytes)
    return {
        "fp32": 4 * elements,
        "gguf": gguf_bytes + metadata,
        "checkpoint": 4 * lora * 4 + (16 << 20),  # weights, two Adam moments, a gradient; plus small files
    }
