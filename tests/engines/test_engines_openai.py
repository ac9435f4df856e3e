"""The OpenAI-compatible engine against a real server (llama-cpp-python's) and a scripted one."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from chatbot.engines import create_engine
from chatbot.engines.base import ChatMessage, GenerationParams, complete
from chatbot.engines.openai_compat import OpenAICompatEngine
from chatbot.errors import ServerError, ServerUnreachableError
from chatbot.settings import GenerationSettings

QUESTION = [ChatMessage("user", "List five fruits, one per line.")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` serving the bundled SmolLM2 GGUF on a free local port."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extra is not installed")
    import httpx

    from chatbot.engines.llamacpp import bundled_model_path

    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path())]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as out:  # a file, not a pipe: the server logs a lot and must never block
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start within 90 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


pytest_slow = pytest.mark.slow


@pytest_slow
def test_streams_an_answer_from_a_real_server(server: str, tmp_path):
    engine = create_engine(GenerationSettings(engine="openai", base_url=server), models_dir=tmp_path)
    assert isinstance(engine, OpenAICompatEngine)
    pieces = list(engine.stream(QUESTION, GenerationParams(max_new_tokens=24)))
    assert len(pieces) > 3 and "".join(pieces).strip()
    assert engine.name.startswith("openai:") and "SmolLM2" in engine.name  # model asked of the server


@pytest_slow
def test_generation_params_reach_the_server(server: str):
    engine = OpenAICompatEngine(server, model="smollm2")
    greedy = GenerationParams(max_new_tokens=24)
    full = complete(engine, QUESTION, greedy)
    assert full == complete(engine, QUESTION, greedy)
    # the bundled model through the local llama.cpp engine gives the same greedy answer
    from chatbot.engines.llamacpp import LlamaCppEngine

    local = LlamaCppEngine(n_ctx=2048)
    assert full == complete(local, QUESTION, greedy)
    short = complete(engine, QUESTION, GenerationParams(max_new_tokens=3))
    assert 0 < local.count_tokens(short) <= 4
    hot = GenerationParams(max_new_tokens=24, temperature=1.2, seed=5)
    assert complete(engine, QUESTION, hot) == complete(engine, QUESTION, hot)
    word = full.split()[2]
    stopped = complete(engine, QUESTION, GenerationParams(max_new_tokens=24, stop=(word,)))
    assert word not in stopped and full.startswith(stopped)


@pytest_slow
def test_closing_the_stream_frees_the_server(server: str):
    engine = OpenAICompatEngine(server, model="smollm2")
    stream = engine.stream(QUESTION, GenerationParams(max_new_tokens=1500))
    assert next(stream)
    t0 = time.perf_counter()
    stream.close()
    assert time.perf_counter() - t0 < 2.0
    t0 = time.perf_counter()
    assert complete(engine, QUESTION, GenerationParams(max_new_tokens=4))
    assert time.perf_counter() - t0 < 10  # not queued behind 1,500 abandoned tokens


def test_unreachable_server_is_a_clear_error_after_retries():
    port = _free_port()  # nothing listens there
    engine = OpenAICompatEngine(f"http://127.0.0.1:{port}/v1", model="m", retries=2, backoff_s=0.05)
    t0 = time.perf_counter()
    with pytest.raises(ServerUnreachableError, match=r"after 3 attempts.*MEDCHAT_GENERATION__BASE_URL"):
        list(engine.stream(QUESTION, GenerationParams()))
    assert time.perf_counter() - t0 >= 0.05 + 0.1  # backoff doubled between attempts


class _Scripted(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests, then streams 'Hello there.' as SSE."""

    failures = 2
    seen: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"auth": self.headers.get("Authorization"), **body})
        if len(type(self).seen) <= type(self).failures:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"busy")
            return
        if self.headers.get("Authorization") != "Bearer sekret":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error": "bad key"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ("Hello", " there", ".", " STOP", " never"):
            event = {"choices": [{"delta": {"content": piece}}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"seen": [], "failures": 2})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    httpd.shutdown()


def test_retries_5xx_then_streams_with_the_key_from_the_environment(scripted, monkeypatch):
    url, handler = scripted
    monkeypatch.setenv("MY_SERVER_KEY", "sekret")
    engine = OpenAICompatEngine(url, model="m", api_key_env="MY_SERVER_KEY", retries=3, backoff_s=0.01)
    text = complete(engine, QUESTION, GenerationParams(max_new_tokens=7, temperature=0, stop=(" STOP",)))
    assert text == "Hello there."
    assert len(handler.seen) == 3
    last = handler.seen[-1]
    assert last["auth"] == "Bearer sekret"
    assert (last["max_tokens"], last["temperature"], last["stop"], last["top_k"]) == (7, 0, [" STOP"], 1)


def test_rejected_key_names_the_variable(scripted, monkeypatch):
    url, handler = scripted
    handler.failures = 0
    monkeypatch.delenv("MY_SERVER_KEY", raising=False)
    engine = OpenAICompatEngine(url, model="m", api_key_env="MY_SERVER_KEY", retries=3, backoff_s=0.01)
    with pytest.raises(ServerError, match=r"401.*\$MY_SERVER_KEY"):
        complete(engine, QUESTION, GenerationParams())
    assert len(handler.seen) == 1  # a 401 is not retried
