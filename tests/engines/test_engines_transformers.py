"""The transformers engine on the bundled SmolLM2 weights, dequantized from the GGUF once.

CPU only: the 4-bit nf4 path runs through bitsandbytes' CPU kernels.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from chatbot.engines.base import ChatMessage, GenerationParams, complete
from chatbot.errors import DeviceError, ModelNotFoundError

pytest.importorskip("gguf", reason="the gguf package is needed to read the bundled GGUF")
pytestmark = pytest.mark.slow

QUESTION = [ChatMessage("user", "What is high blood pressure?")]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def fp32(models_dir: Path):
    from chatbot.engines.transformers_engine import TransformersEngine

    return TransformersEngine(quantization="none", device="cpu", models_dir=models_dir, n_ctx=2048)


@pytest.fixture(scope="module")
def nf4(models_dir: Path, fp32):  # after fp32, which builds the converted folder
    pytest.importorskip("bitsandbytes")
    from chatbot.engines.transformers_engine import TransformersEngine

    return TransformersEngine(quantization="nf4", device="cpu", models_dir=models_dir, n_ctx=2048)


def test_gguf_is_converted_once_into_models_dir(fp32, models_dir: Path):
    folders = [p for p in models_dir.iterdir() if p.is_dir()]
    assert len(folders) == 1 and (folders[0] / "model.safetensors").is_file()
    assert fp32.name == "transformers:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert fp32.quantization == "none"  # `auto` on a CPU


def test_nf4_on_cpu_has_4bit_layers_and_answers(nf4, fp32):
    import bitsandbytes as bnb

    layers = [m for m in nf4.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 30 * 7  # q, k, v, o, gate, up, down in each of the 30 blocks
    assert layers[0].weight.quant_type == "nf4"
    assert nf4.memory_footprint() < 0.35 * fp32.memory_footprint()
    answer = complete(nf4, QUESTION, GenerationParams(max_new_tokens=12))
    assert len(answer.split()) >= 3


def test_nf4_on_cpu_is_quantized_once_and_reloaded_from_the_copy(nf4, models_dir: Path):
    from chatbot.engines.transformers_engine import TransformersEngine

    copies = [p for p in models_dir.iterdir() if "-nf4-" in p.name]
    assert len(copies) == 1 and (copies[0] / "model.safetensors").is_file()
    assert copies[0].joinpath("model.safetensors").stat().st_size < 0.4 * sum(
        p.stat().st_size for p in models_dir.glob("*/model.safetensors") if p.parent != copies[0]
    )
    again = TransformersEngine(quantization="nf4", device="cpu", models_dir=models_dir, n_ctx=2048)
    assert "quantization_config" in again.model.config.to_dict()
    assert again.memory_footprint() == nf4.memory_footprint()
    params = GenerationParams(max_new_tokens=12)
    assert complete(again, QUESTION, params) == complete(nf4, QUESTION, params)
    assert [p.name for p in models_dir.iterdir() if "-nf4-" in p.name] == [copies[0].name]


def test_int8_on_cpu_has_8bit_layers_answers_and_is_kept(models_dir: Path, fp32, recwarn):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    from chatbot.engines.transformers_engine import TransformersEngine

    int8 = TransformersEngine(quantization="int8", device="cpu", models_dir=models_dir, n_ctx=2048)
    layers = [m for m in int8.model.modules() if isinstance(m, bnb.nn.Linear8bitLt)]
    assert len(layers) == 30 * 7
    assert int8.memory_footprint() < 0.45 * fp32.memory_footprint()
    params = GenerationParams(max_new_tokens=8)
    first = complete(int8, QUESTION, params)
    assert len(first.split()) >= 3
    assert not [w for w in recwarn if "MatMul8bitLt" in str(w.message)]
    again = TransformersEngine(quantization="int8", device="cpu", models_dir=models_dir, n_ctx=2048)
    assert [p.name for p in models_dir.iterdir() if "-int8-" in p.name]
    assert complete(again, QUESTION, params) == first


def test_chat_template_is_the_models_own(fp32):
    ids = fp32._encode(QUESTION)["input_ids"][0]
    text = fp32.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>") and text.rstrip().endswith("<|im_start|>assistant")
    assert fp32.prompt_tokens(QUESTION) == len(ids)


def test_generation_params(fp32):
    greedy = GenerationParams(max_new_tokens=16)
    first = complete(fp32, QUESTION, greedy)
    assert first == complete(fp32, QUESTION, greedy)
    few = complete(fp32, QUESTION, GenerationParams(max_new_tokens=4))
    assert 0 < len(fp32.tokenizer(few, add_special_tokens=False)["input_ids"]) <= 4
    assert first.startswith(few.strip())
    hot = GenerationParams(max_new_tokens=16, temperature=1.3, top_k=0, seed=11)
    sampled = complete(fp32, QUESTION, hot)
    assert sampled == complete(fp32, QUESTION, hot)
    others = {
        complete(fp32, QUESTION, GenerationParams(max_new_tokens=16, temperature=1.3, seed=s)) for s in (1, 2)
    }
    assert len(others | {sampled}) > 1
    word = first.split()[3]
    stopped = complete(fp32, QUESTION, GenerationParams(max_new_tokens=16, stop=(word,)))
    assert word not in stopped and first.startswith(stopped)


def test_closing_the_stream_stops_generation(fp32):
    stream = fp32.stream(QUESTION, GenerationParams(max_new_tokens=2000))
    assert next(stream)
    t0 = time.perf_counter()
    stream.close()
    assert time.perf_counter() - t0 < 2.0
    assert not [t for t in threading.enumerate() if t.name == "medchat-generate"]
    assert complete(fp32, QUESTION, GenerationParams(max_new_tokens=2))  # the lock was released


def test_a_stream_left_unread_does_not_hold_the_model(fp32):
    """The lock lives in the generation thread, not in the caller's generator: a client that
    vanishes mid-answer (never reading on, never closing) delays others by its remaining tokens."""
    abandoned = fp32.stream(QUESTION, GenerationParams(max_new_tokens=24))
    assert next(abandoned)
    done: list[str] = []
    short = GenerationParams(max_new_tokens=2)
    other = threading.Thread(target=lambda: done.append(complete(fp32, QUESTION, short)))
    other.start()
    other.join(timeout=120)
    assert done and done[0].strip()
    abandoned.close()


def test_concurrent_requests_are_queued(fp32):
    expected = complete(fp32, QUESTION, GenerationParams(max_new_tokens=6))
    results: list[str] = []

    def ask() -> None:
        results.append(complete(fp32, QUESTION, GenerationParams(max_new_tokens=6)))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


def test_missing_model_names_the_setting(tmp_path: Path):
    from chatbot.engines.transformers_engine import TransformersEngine

    with pytest.raises(ModelNotFoundError, match="MEDCHAT_GENERATION__MODEL_PATH"):
        TransformersEngine(tmp_path / "nothing.gguf", device="cpu")
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        TransformersEngine(tmp_path, device="cpu")


def test_hub_id_offline_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import huggingface_hub.constants

    from chatbot.engines.transformers_engine import TransformersEngine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the hub library reads the variable once at import, and it may already be imported
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match=r"HF_HUB_OFFLINE.*MEDCHAT_GENERATION__MODEL_ID"):
        TransformersEngine(model_id="medchat-tests/no-such-model", device="cpu")


def test_cuda_requested_without_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    from chatbot.engines.transformers_engine import TransformersEngine

    with pytest.raises(DeviceError, match="MEDCHAT_GENERATION__DEVICE=cpu"):
        TransformersEngine(device="cuda")
