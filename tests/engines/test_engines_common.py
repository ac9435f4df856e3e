"""The parts every engine shares: context fitting, stop strings, settings, the llama.cpp engine."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

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


def test_settings_accept_new_engines_and_reject_unknown_values(tmp_path: Path):
    gen = GenerationSettings(engine="transformers", quantization="nf4", device="cpu", compute_dtype="float32")
    assert gen.engine == "transformers"
    with pytest.raises(ValueError):
        GenerationSettings(quantization="fp3")
    assert create_engine(GenerationSettings(engine="fake"), models_dir=tmp_path).name == "fake"


def test_engine_cache_ignores_sampling_settings(tmp_path: Path):
    a = get_engine(GenerationSettings(engine="fake", temperature=0.0), models_dir=tmp_path)
    b = get_engine(GenerationSettings(engine="fake", temperature=0.7, max_new_tokens=9), models_dir=tmp_path)
    c = get_engine(GenerationSettings(engine="fake", n_ctx=2048), models_dir=tmp_path)
    d = get_engine(GenerationSettings(engine="fake"), models_dir=tmp_path / "elsewhere")
    assert a is b
    assert c is not a and d is not a


def test_a_home_set_in_the_settings_file_holds_the_derived_gguf(tmp_path: Path, monkeypatch):
    """Issue #32: with MEDCHAT_HOME unset, the home named in medchat.toml is where the llama.cpp
    copy of the model goes (it was `~/.medchat/models`, from the environment alone)."""
    import chatbot.engines.llamacpp as llamacpp
    from chatbot.chain import Chain
    from chatbot.settings import Settings

    home = tmp_path / "toml-home"
    config = tmp_path / "medchat.toml"
    config.write_text(f'home = "{home.as_posix()}"\n', encoding="utf-8")
    monkeypatch.delenv("MEDCHAT_HOME")
    monkeypatch.delenv("MEDCHAT_GENERATION__MODELS_DIR")
    monkeypatch.setenv("MEDCHAT_CONFIG", str(config))
    asked: list[Path] = []

    def gguf_for(model_path, requantize, models_dir):
        asked.append(models_dir)
        return tmp_path / "model.gguf"

    class Loaded:
        def __init__(self, path, **kwargs):
            self.path = path

    monkeypatch.setattr(llamacpp, "gguf_for", gguf_for)
    monkeypatch.setattr(llamacpp, "LlamaCppEngine", Loaded)
    settings = Settings()
    assert settings.home == home and settings.models_dir == home / "models"
    assert Chain(settings).engine.path == tmp_path / "model.gguf"
    assert asked == [home / "models"]


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


EXEMPLAR = [
    ChatMessage("system", "You are a careful clinician. Answer from the passages and cite them like [1]."),
    ChatMessage("user", "[1] Iron tablets are taken for three months.\n\nQuestion: How long are they taken?"),
    ChatMessage("assistant", "About three months [1]."),
]


def _ask(question: str, system: bool = True) -> list[ChatMessage]:
    return [*EXEMPLAR, ChatMessage("user", question)] if system else [ChatMessage("user", question)]


def _first_logits(engine, messages):
    """The model's scores for the first answer token (what greedy decoding picks from)."""
    import numpy as np

    complete(engine, messages, GenerationParams(max_new_tokens=1))
    llm = engine._llm
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


@pytest.fixture(scope="module")
def default_llama(shared_models_dir):
    """The engine on the file medchat loads by default (on x86 the Q8_0 copy of the bundled
    model, whose repacked kernels may score a one-token batch differently from a longer one)."""
    from chatbot.engines.llamacpp import LlamaCppEngine, gguf_for

    return LlamaCppEngine(gguf_for(None, "auto", shared_models_dir), n_ctx=2048)


@pytest.mark.slow
def test_llamacpp_answer_does_not_depend_on_earlier_requests(default_llama):
    """Same request, same scores, bit for bit, whatever was asked before: the fixed prefix is
    restored and the rest always evaluated the same way (llama-cpp-python's own reuse of the
    previous prompt changed the batching and, on some CPUs, the greedy answer)."""
    import numpy as np

    from chatbot.engines.llamacpp import LlamaCppEngine

    llama = default_llama
    target = _ask(
        "Passages: [1] Gout is treated with colchicine or NSAIDs.\n\nQuestion: How is gout treated?"
    )
    fresh = _first_logits(LlamaCppEngine(llama.path, n_ctx=2048), target)
    histories = [
        _ask("Passages: [1] Gout is treated with colchicine.\n\nQuestion: What is gout?"),  # same prefix
        _ask("Name a colour.", system=False),  # nothing in common
        target,  # the very same request again
        _ask("Passages: " + "Asthma is treated with inhalers. " * 60 + "\n\nQuestion: asthma?"),  # longer
    ]
    for earlier in histories:
        complete(llama, earlier, GenerationParams(max_new_tokens=12))
        assert np.array_equal(_first_logits(llama, target), fresh), earlier[-1].content[:40]
    stream = llama.stream(histories[3], GenerationParams(max_new_tokens=40))
    next(stream)
    stream.close()  # stopped mid-answer
    assert np.array_equal(_first_logits(llama, target), fresh)


@pytest.mark.slow
def test_llamacpp_same_answer_across_histories_and_threads(default_llama):
    llama = default_llama
    questions = ["Name a colour.", "What is asthma?", "List five fruits, one per line."]
    params = GenerationParams(max_new_tokens=16)
    expected = {q: complete(llama, _ask(q), params) for q in questions}
    results: list[tuple[str, str]] = []

    def worker(offset: int) -> None:
        for i in range(len(questions)):
            q = questions[(i + offset) % len(questions)]
            results.append((q, complete(llama, _ask(q), params)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 9
    assert all(answer == expected[q] for q, answer in results)


@pytest.mark.slow
def test_llamacpp_closed_or_abandoned_stream_frees_the_model():
    """Stop in the chat page closes the stream: the next request runs at once. A stream that is
    neither read nor closed (a vanished client) is taken over after `abandoned_after_s`."""
    from chatbot.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(n_ctx=2048, abandoned_after_s=120.0)
    params = GenerationParams(max_new_tokens=200)
    long_question = _ask("Explain in detail how asthma is treated, step by step.")
    expected = complete(engine, _ask("Name a colour."), GenerationParams(max_new_tokens=8))

    def ask_in_thread(timeout: float) -> list[str]:
        done: list[str] = []
        colour = GenerationParams(max_new_tokens=8)
        other = threading.Thread(target=lambda: done.append(complete(engine, _ask("Name a colour."), colour)))
        other.start()
        other.join(timeout=timeout)
        return done

    stopped = engine.stream(long_question, params)
    next(stopped)
    stopped.close()
    assert engine._owner is None  # freed at once, not after the abandonment timer
    assert ask_in_thread(timeout=100) == [expected]

    engine.abandoned_after_s = 1.0
    abandoned = engine.stream(long_question, params)
    next(abandoned)  # read once, then left open
    assert ask_in_thread(timeout=100) == [expected]
    assert list(abandoned) == []  # read again later, it just ends: the model was taken back
    assert complete(engine, _ask("Name a colour."), GenerationParams(max_new_tokens=8)) == expected


@pytest.mark.slow
def test_requantized_copy_is_made_once_and_loads(tmp_path, capfd):
    from chatbot.engines.llamacpp import LlamaCppEngine, bundled_model_path, derive_gguf, gguf_for

    bundled = bundled_model_path()
    capfd.readouterr()
    copy = derive_gguf(bundled, tmp_path / "models", "Q8_0")
    printed = capfd.readouterr()
    assert "quantize" not in printed.err + printed.out  # the C library's notes stay off the terminal
    assert copy.parent == tmp_path / "models" and copy.name.endswith(".Q8_0.gguf")
    made = copy.stat().st_mtime_ns
    assert derive_gguf(bundled, tmp_path / "models", "Q8_0") == copy
    assert copy.stat().st_mtime_ns == made  # kept, not made again
    assert not list((tmp_path / "models").glob("*.part"))
    engine = LlamaCppEngine(copy, n_ctx=2048)
    assert engine.quantization == "Q8_0"
    assert complete(engine, _ask("Name a colour."), GenerationParams(max_new_tokens=8)).strip()
    # auto: only the bundled model is requantized; a file the user chose is used as it is
    assert gguf_for(None, "auto", tmp_path / "models") == copy
    assert gguf_for(bundled, "auto", tmp_path / "models") == bundled
    assert gguf_for(None, "none", tmp_path / "models") == bundled
    # a models folder that cannot be written: the bundled file is used, with a warning
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    assert gguf_for(None, "auto", blocker / "models") == bundled


def test_requantize_setting_picks_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCHAT_GENERATION__REQUANTIZE", "none")
    from chatbot.settings import Settings

    assert Settings().generation.requantize == "none"
    with pytest.raises(ValueError):
        GenerationSettings(requantize="Q3_K")


def test_llamacpp_gpu_layers_without_gpu_build_is_a_clear_error():
    llama_cpp = pytest.importorskip("llama_cpp")
    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python has GPU support")
    from chatbot.engines.llamacpp import LlamaCppEngine

    with pytest.raises(DeviceError, match="N_GPU_LAYERS=-1"):
        LlamaCppEngine(n_gpu_layers=-1)


def test_a_process_that_leaves_the_engine_open_exits_without_a_traceback():
    """llama-cpp-python's own __del__ ran after the interpreter had torn its modules down and printed
    "Exception ignored ... 'NoneType' object is not callable" at the end of `medchat prefs prepare`."""
    import subprocess
    import sys

    code = (
        "import sentence_transformers\n"  # as every command that embeds: torch loaded, a later teardown
        "from chatbot.engines.llamacpp import LlamaCppEngine, bundled_model_path\n"
        "engine = LlamaCppEngine(bundled_model_path(), n_ctx=512)\n"
        "print('loaded')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "loaded" in out.stdout, out.stderr
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_a_waiting_person_gets_the_model_before_background_work(llama):
    """The prepare worker's requests wait while a person's (chat, Ask both, Next) is waiting, even
    when the worker asked first; people are served in the order they asked."""
    import time

    from chatbot.engines.base import background
    from chatbot.engines.llamacpp import _Lease

    order: list[str] = []

    def wants(name: str, behind: bool) -> threading.Thread:
        def take() -> None:
            lease = _Lease()
            if behind:
                with background():
                    llama._acquire(lease)
            else:
                llama._acquire(lease)
            order.append(name)
            llama._release(lease)

        t = threading.Thread(target=take)
        t.start()
        time.sleep(0.3)  # arrival order is the order of these calls
        return t

    holder = _Lease()
    llama._acquire(holder)  # an answer is being written
    threads = [wants(f"worker{n}", True) for n in range(3)]
    threads += [wants("person1", False), wants("person2", False)]
    llama._release(holder)
    for t in threads:
        t.join(30)
    assert order == ["person1", "person2", "worker0", "worker1", "worker2"]
