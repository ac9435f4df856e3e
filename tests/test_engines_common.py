"""The parts every engine shares: context fitting, stop strings, settings, the llama.cpp engine."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from chatbot.engines import create_engine, fit_passages, get_engine
from chatbot.engines.base import ChatMessage, GenerationParams, StopFilter, TokenCounter, complete
from chatbot.errors import DeviceError, PromptTooLongError
from chatbot.settings import GenerationSettings


class WordCounter:
    """Counts words as tokens, so fitting can be checked by hand."""

    def __init__(self, n_ctx: int) -> None:
        self.n_ctx = n_ctx

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content.split()) for m in messages)


def _builder(question: str, passages: list[str]):
    def build(n: int) -> list[ChatMessage]:
        body = "\n".join(f"[{i}] {p}" for i, p in enumerate(passages[:n], start=1))
        return [
            ChatMessage("system", "Answer from the passages only."),
            ChatMessage("user", f"{body}\n{question}"),
        ]

    return build


def test_fit_drops_lowest_ranked_passages_first():
    passages = ["one two three four five"] * 6  # 6 words each with the [n] marker
    build = _builder("What is it?", passages)
    base = WordCounter(1000).prompt_tokens(build(0))
    # room for exactly three passages plus 10 answer tokens
    engine = WordCounter(base + 3 * 6 + 10)
    assert isinstance(engine, TokenCounter)
    assert fit_passages(build, 6, engine, max_new_tokens=10) == 3
    assert fit_passages(build, 6, WordCounter(10_000), max_new_tokens=10) == 6
    # the question and instructions are never cut: a window too small for them is an error
    with pytest.raises(PromptTooLongError, match="MEDCHAT_GENERATION__N_CTX"):
        fit_passages(build, 6, WordCounter(base + 5), max_new_tokens=10)


def test_fit_keeps_everything_for_engines_that_cannot_count():
    assert fit_passages(_builder("q", ["p"] * 4), 4, object(), max_new_tokens=10) == 4


@pytest.mark.parametrize(
    ("pieces", "stop", "expected"),
    [
        (["Hello <", "/", "s> more"], ["</s>"], "Hello "),
        (["abc E", "N", "x"], ["END"], "abc ENx"),
        (["no stop here"], [], "no stop here"),
        (["a", "bSTOPc"], ["STOP", "b"], "a"),
    ],
)
def test_stop_filter_never_shows_part_of_a_stop_string(pieces, stop, expected):
    f = StopFilter(stop)
    assert "".join(f.feed(p) for p in pieces) + f.flush() == expected


def test_settings_accept_new_engines_and_reject_unknown_values():
    gen = GenerationSettings(engine="transformers", quantization="nf4", device="cpu", compute_dtype="float32")
    assert gen.engine == "transformers"
    with pytest.raises(ValueError):
        GenerationSettings(quantization="fp3")
    assert create_engine(GenerationSettings(engine="fake")).name == "fake"


def test_engine_cache_ignores_sampling_settings():
    a = get_engine(GenerationSettings(engine="fake", temperature=0.0))
    b = get_engine(GenerationSettings(engine="fake", temperature=0.7, max_new_tokens=9))
    c = get_engine(GenerationSettings(engine="fake", n_ctx=2048))
    assert a is b
    assert c is not a


@pytest.fixture(scope="module")
def llama():
    from chatbot.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(n_ctx=2048)


@pytest.mark.slow
def test_llamacpp_counts_prompt_tokens_like_the_model(llama):
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "What is HbA1c?")]
    usage = llama._llm.create_chat_completion(
        messages=[{"role": m.role, "content": m.content} for m in messages], max_tokens=1
    )["usage"]
    assert llama.prompt_tokens(messages) == usage["prompt_tokens"]
    assert llama.n_ctx == 2048


@pytest.mark.slow
def test_llamacpp_generation_params(llama):
    messages = [ChatMessage("user", "List five fruits, one per line.")]
    greedy = GenerationParams(max_new_tokens=24)
    assert complete(llama, messages, greedy) == complete(llama, messages, greedy)
    short = complete(llama, messages, GenerationParams(max_new_tokens=3))
    assert 0 < llama.count_tokens(short) <= 4
    hot = GenerationParams(max_new_tokens=24, temperature=1.2, seed=7)
    assert complete(llama, messages, hot) == complete(llama, messages, hot)
    full = complete(llama, messages, greedy)
    word = full.split()[2]
    stopped = complete(llama, messages, GenerationParams(max_new_tokens=24, stop=(word,)))
    assert word not in stopped and full.startswith(stopped)


@pytest.mark.slow
def test_llamacpp_requests_are_queued(llama):
    messages = [ChatMessage("user", "Name a colour.")]
    expected = complete(llama, messages, GenerationParams(max_new_tokens=8))
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(complete(llama, messages, GenerationParams(max_new_tokens=8)))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


def test_llamacpp_gpu_layers_without_gpu_build_is_a_clear_error():
    llama_cpp = pytest.importorskip("llama_cpp")
    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python has GPU support")
    from chatbot.engines.llamacpp import LlamaCppEngine

    with pytest.raises(DeviceError, match="N_GPU_LAYERS=-1"):
        LlamaCppEngine(n_gpu_layers=-1)
