"""Several OpenAI-compatible endpoints: failover, health checks and the error when all are down.

Each endpoint is a real HTTP server on 127.0.0.1 started by the test (or a free port where nothing
listens), scripted to serve, answer 500, or break off before or after its first token.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from chatbot.engines import create_engine
from chatbot.engines.base import ChatMessage, GenerationParams, complete
from chatbot.engines.openai_compat import OpenAICompatEngine
from chatbot.errors import ConfigError, ServerUnreachableError
from chatbot.settings import GenerationSettings, Settings

QUESTION = [ChatMessage("user", "Say hello.")]
PIECES = ("Hello", " there", ".")


class Server:
    """A scripted endpoint; `mode` may change while it runs: serve, fail (500), cut (a 200 that
    breaks off before any text), error (an SSE error event first), late (one piece, then cut)."""

    def __init__(self, mode: str = "serve") -> None:
        self.mode = mode
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(f"GET {self.path}")
                if server.mode == "fail":
                    self._send(500, b"internal error")
                    return
                self._send(200, json.dumps({"data": [{"id": f"tiny-{server.port}"}]}).encode())

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(f"POST {self.path}")
                if server.mode == "fail":
                    self._send(500, b"model crashed")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", "100000")  # a cut stream is then visibly short
                self.end_headers()
                if server.mode == "cut":
                    self.wfile.write(b": keep-alive\n\n")
                    return
                if server.mode == "error":
                    self.wfile.write(b'data: {"error": {"message": "out of memory"}}\n\n')
                    return
                for i, piece in enumerate(PIECES):
                    event = {"choices": [{"delta": {"content": piece}}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                    if server.mode == "late" and i == 0:
                        return
                self.wfile.write(b"data: [DONE]\n\n")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def posts(self) -> int:
        return sum(r.startswith("POST") for r in self.requests)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.httpd.shutdown()
        s.httpd.server_close()


def _start(servers: list[Server], mode: str) -> Server:
    servers.append(Server(mode))
    return servers[-1]


def _nothing_listens() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_a_down_and_a_failing_endpoint_are_passed_over(servers):
    down, failing, good = _nothing_listens(), _start(servers, "fail"), _start(servers, "serve")
    engine = OpenAICompatEngine([down, failing.url, good.url], model="m", retries=0)
    t0 = time.perf_counter()
    assert complete(engine, QUESTION, GenerationParams()) == "Hello there."
    assert time.perf_counter() - t0 < 5  # failover is immediate, not after a backoff
    assert (failing.posts(), good.posts()) == (1, 1)
    first, second, third = engine.endpoints
    assert first.last_error.startswith("ConnectError")
    assert second.last_error.startswith("HTTP 500: model crashed")
    assert third.last_error == ""
    # while they are passed over, the next answers go straight to the serving endpoint
    assert complete(engine, QUESTION, GenerationParams()) == "Hello there."
    assert (failing.posts(), good.posts()) == (1, 2)


def test_a_health_check_lets_a_recovered_endpoint_back(servers):
    flaky, good = _start(servers, "fail"), _start(servers, "serve")
    engine = OpenAICompatEngine([flaky.url, good.url], model="m", retries=0, health_interval_s=0.3)
    assert complete(engine, QUESTION, GenerationParams()) == "Hello there."
    assert flaky.requests == ["POST /v1/chat/completions"] and good.posts() == 1
    time.sleep(0.4)
    # its time out is over but it still fails its health check: passed over again, no POST sent
    assert complete(engine, QUESTION, GenerationParams()) == "Hello there."
    assert flaky.requests == ["POST /v1/chat/completions", "GET /v1/models"] and good.posts() == 2
    assert engine.endpoints[0].last_error == "health check: HTTP 500"
    flaky.mode = "serve"
    time.sleep(0.4)
    assert complete(engine, QUESTION, GenerationParams()) == "Hello there."
    assert flaky.requests[-2:] == ["GET /v1/models", "POST /v1/chat/completions"]
    assert good.posts() == 2 and engine.endpoints[0].last_error == ""
    assert engine.health() == {flaky.url: "ok", good.url: "ok"}


@pytest.mark.parametrize("mode", ["cut", "error"])
def test_an_endpoint_that_fails_before_the_first_token_is_replaced(servers, mode):
    broken, good = _start(servers, mode), _start(servers, "serve")
    engine = OpenAICompatEngine([broken.url, good.url], model="m", retries=0)
    assert list(engine.stream(QUESTION, GenerationParams())) == list(PIECES)
    assert (broken.posts(), good.posts()) == (1, 1)
    assert "failed before the first token" in engine.endpoints[0].last_error
    assert ("out of memory" if mode == "error" else "Error") in engine.endpoints[0].last_error


def test_an_answer_broken_off_after_its_first_token_is_not_restarted_elsewhere(servers):
    late, good = _start(servers, "late"), _start(servers, "serve")
    engine = OpenAICompatEngine([late.url, good.url], model="m", retries=0)
    stream = engine.stream(QUESTION, GenerationParams())
    assert next(stream) == "Hello"
    with pytest.raises(ServerUnreachableError, match=rf"{late.url} broke off the answer"):
        list(stream)
    assert good.posts() == 0  # the reader saw "Hello": a second answer would not continue it


def test_all_endpoints_down_is_one_error_naming_each(servers):
    down, failing = _nothing_listens(), _start(servers, "fail")
    engine = OpenAICompatEngine([down, failing.url], model="m", retries=1, backoff_s=0.05)
    t0 = time.perf_counter()
    with pytest.raises(ServerUnreachableError) as caught:
        complete(engine, QUESTION, GenerationParams())
    assert time.perf_counter() - t0 >= 0.05  # one backoff between the two rounds
    message = str(caught.value)
    assert "\n" not in message
    assert f"any of the 2 generation servers after 2 attempts each: {down} (ConnectError" in message
    assert f"{failing.url} (HTTP 500: model crashed)" in message
    assert message.endswith("start one of them, or fix MEDCHAT_GENERATION__BASE_URL")
    assert failing.posts() == 2


def test_the_model_name_is_asked_of_a_serving_endpoint(servers):
    failing, good = _start(servers, "fail"), _start(servers, "serve")
    engine = OpenAICompatEngine([failing.url, good.url], retries=0)
    assert engine.model == f"tiny-{good.port}"
    assert engine.name == f"openai:tiny-{good.port}@{failing.url},{good.url}"


def test_settings_name_several_endpoints(servers, monkeypatch):
    a, b = _start(servers, "serve"), _start(servers, "serve")
    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "openai")
    monkeypatch.setenv("MEDCHAT_GENERATION__BASE_URL", f" {a.url}/ , {b.url}")
    settings = Settings()
    engine = create_engine(settings.generation, models_dir=settings.models_dir)
    assert isinstance(engine, OpenAICompatEngine)
    assert [e.url for e in engine.endpoints] == [a.url, b.url]
    listed = GenerationSettings(engine="openai", base_url=[a.url, b.url])  # type: ignore[arg-type]
    assert listed.base_url == f"{a.url},{b.url}"  # a TOML list


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("127.0.0.1:8080/v1", "'127.0.0.1:8080/v1' is not an http(s) URL: write it as http://host:port/v1"),
        ("http://a:1/v1,ftp://b/v1", "'ftp://b/v1' is not an http(s) URL"),
        (" , ", "names no server"),
        ("http://a:1/v1,http://a:1/v1/", "names the same server twice"),
    ],
)
def test_a_bad_endpoint_list_is_refused_naming_the_entry(value, says):
    with pytest.raises(ValidationError, match=r"MEDCHAT_GENERATION__BASE_URL") as caught:
        GenerationSettings(base_url=value)
    assert says in str(caught.value)
    with pytest.raises(ConfigError, match="MEDCHAT_GENERATION__BASE_URL"):
        OpenAICompatEngine(value)
