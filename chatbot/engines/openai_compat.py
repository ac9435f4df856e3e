"""An OpenAI-compatible HTTP server as the engine: vLLM, TGI, Ollama, the llama.cpp server.

Streams `/chat/completions` over server-sent events. Several endpoints may serve the same model
(`MEDCHAT_GENERATION__BASE_URL="http://a:8080/v1,http://b:8080/v1"`): a request goes to the first
one that is up; one that refuses the connection, answers 429 or 5xx, or breaks off before the first
token is passed over for `health_interval_s` seconds and the next one is tried at once. Once that
time is up, a health check (`GET /models`) lets it back. When every endpoint fails, the rounds are
repeated with exponential backoff, and the error names each endpoint and why it failed. Once text
has been shown, a broken stream is reported rather than silently restarted elsewhere. Closing the
stream closes the HTTP response, which tells the server to stop.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.engines.base import ChatMessage, GenerationParams, StopFilter, approx_prompt_tokens
from chatbot.errors import DependencyMissingError, ServerError, ServerUnreachableError
from chatbot.settings import BASE_URL_SETTING as SETTING
from chatbot.settings import split_base_urls

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass
class Endpoint:
    """One server and what the engine last saw of it."""

    url: str
    down_until: float = 0.0
    """Monotonic time before which it is passed over (tried only when every other one failed)."""
    last_error: str = ""
    """Why it last failed; empty while it answers."""

    @property
    def suspect(self) -> bool:
        """It failed, and its time out is over: a health check decides whether it is back."""
        return bool(self.last_error) and time.monotonic() >= self.down_until


class OpenAICompatEngine:
    """Chat completions from one or more servers, each URL ending in `/v1`."""

    quantization = "server"

    def __init__(
        self,
        base_url: str | Sequence[str] = "http://127.0.0.1:8080/v1",
        *,
        model: str = "",
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        extended_params: bool = True,
        n_ctx: int = 4096,
        health_interval_s: float = 30.0,
        max_connections: int = 256,
    ) -> None:
        try:
            import httpx
        except ImportError as e:  # pragma: no cover - httpx is a core dependency
            raise DependencyMissingError("the openai engine needs httpx: run `pip install httpx`") from e
        self._httpx = httpx
        self.endpoints = [Endpoint(url) for url in split_base_urls(base_url)]
        self.base_url = self.endpoints[0].url
        self.api_key_env = api_key_env
        self.retries = retries
        self.backoff_s = backoff_s
        self.extended_params = extended_params
        self.n_ctx = n_ctx
        self.health_interval_s = health_interval_s
        self._health_timeout = httpx.Timeout(min(timeout_s, 5.0), connect=connect_timeout_s)
        self._lock = threading.Lock()
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # one connection per answer being written: httpx's default pool (100, 20 kept open) made the
        # 101st answer wait for a free connection, and reopened connections under load
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self._model = model
        self.name = self._name()

    def _name(self) -> str:
        return f"openai:{self._model or '?'}@{','.join(e.url for e in self.endpoints)}"

    @property
    def model(self) -> str:
        """The model name sent to the server; asked of the server when not configured."""
        if not self._model:
            url, listed = self._list_models()
            if not listed:
                raise ServerError(f"{url}/models lists no model: set MEDCHAT_GENERATION__SERVER_MODEL")
            self._model = str(listed[0]["id"])
            self.name = self._name()
        return self._model

    def _list_models(self) -> tuple[str, list[dict[str, Any]]]:
        with self._open("GET", "/models") as (endpoint, response):
            response.read()
            return endpoint.url, list(response.json().get("data") or [])

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """An over-estimate: the server's tokenizer is not available here."""
        return approx_prompt_tokens(messages)

    def _payload(self, messages: Sequence[ChatMessage], params: GenerationParams) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "seed": params.seed,
            "stream": True,
        }
        if params.stop:
            payload["stop"] = list(params.stop)[:4]  # the OpenAI API takes at most four
        if self.extended_params:
            payload["top_k"] = params.top_k if params.temperature > 0 else 1
            payload["repeat_penalty"] = params.repeat_penalty
        return payload

    # -- endpoints -------------------------------------------------------------------------------

    def mark_down(self, endpoint: Endpoint, why: str) -> None:
        """Pass `endpoint` over for `health_interval_s` seconds."""
        with self._lock:
            endpoint.last_error = why
            endpoint.down_until = time.monotonic() + self.health_interval_s
        if len(self.endpoints) > 1:
            log.warning("generation server %s failed (%s): trying the next one", endpoint.url, why)

    def _order(self) -> list[Endpoint]:
        """The endpoints to try, in order: those up (as configured), then those passed over, the one
        that comes back first first."""
        now = time.monotonic()
        with self._lock:
            up = [e for e in self.endpoints if e.down_until <= now]
            down = sorted((e for e in self.endpoints if e.down_until > now), key=lambda e: e.down_until)
        return up + down

    def check(self, endpoint: Endpoint) -> bool:
        """The health check: `GET /models` answers 200 in a few seconds. Records the outcome."""
        try:
            status = self._client.get(f"{endpoint.url}/models", timeout=self._health_timeout).status_code
            why = "" if status == 200 else f"health check: HTTP {status}"
        except self._httpx.TransportError as e:
            why = f"health check: {type(e).__name__}: {e}"
        if why:
            self.mark_down(endpoint, why)
            return False
        with self._lock:
            endpoint.last_error, endpoint.down_until = "", 0.0
        return True

    def health(self) -> dict[str, str]:
        """Check every endpoint now: URL -> "ok" or why it failed."""
        return {e.url: "ok" if self.check(e) else e.last_error for e in self.endpoints}

    def _unreachable(self, attempts: int) -> ServerUnreachableError:
        if len(self.endpoints) == 1:
            e = self.endpoints[0]
            return ServerUnreachableError(
                f"cannot get an answer from the generation server at {e.url} after {attempts} attempts "
                f"(last: {e.last_error}): start the server, or fix {SETTING}"
            )
        each = "; ".join(f"{e.url} ({e.last_error or 'not tried'})" for e in self.endpoints)
        return ServerUnreachableError(
            f"cannot get an answer from any of the {len(self.endpoints)} generation servers after "
            f"{attempts} attempt{'s' if attempts > 1 else ''} each: {each}: "
            f"start one of them, or fix {SETTING}"
        )

    def _open(self, method: str, path: str, **kwargs: Any) -> _Entered:
        """A context manager for a streamed response that answered 2xx, yielding (endpoint,
        response): each endpoint in turn, then again after a backoff, `retries` times."""
        httpx = self._httpx
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.info("retrying %s in %.2fs", path, delay)
                time.sleep(delay)
            for endpoint in self._order():
                if endpoint.suspect and not self.check(endpoint):
                    continue
                url = f"{endpoint.url}{path}"
                try:
                    cm = self._client.stream(method, url, **kwargs)
                    response = cm.__enter__()
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as e:
                    self.mark_down(endpoint, f"{type(e).__name__}: {e}")
                    continue
                if response.status_code < 400:
                    return _Entered(cm, endpoint, response)
                body = response.read().decode("utf-8", "replace")[:300]
                cm.__exit__(None, None, None)
                last = f"HTTP {response.status_code}: {body}"
                if response.status_code in RETRY_STATUS:
                    self.mark_down(endpoint, last)
                    continue
                hint = (
                    f"check the API key in ${self.api_key_env}"
                    if response.status_code in (401, 403)
                    else "check MEDCHAT_GENERATION__SERVER_MODEL and the generation settings"
                )
                raise ServerError(f"the generation server at {url} refused the request ({last}): {hint}")
        raise self._unreachable(self.retries + 1)

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        payload = self._payload(messages, params)
        # an endpoint that fails before its first token is passed over and the next one asked; after
        # the first token the answer stays with its endpoint
        for _ in range(len(self.endpoints)):
            stop = StopFilter(params.stop)
            shown_any = False
            with self._open("POST", "/chat/completions", json=payload) as (endpoint, response):
                try:
                    for piece in self._pieces(response):
                        shown = stop.feed(piece)
                        if shown:
                            shown_any = True
                            yield shown
                        if stop.stopped:
                            return
                except (self._httpx.TransportError, ServerError) as e:
                    if shown_any or len(self.endpoints) == 1:
                        if isinstance(e, ServerError):
                            raise
                        raise ServerUnreachableError(
                            f"the generation server at {endpoint.url} broke off the answer ({e}): try again"
                        ) from e
                    self.mark_down(endpoint, f"failed before the first token: {type(e).__name__}: {e}")
                    continue
            tail = stop.flush()
            if tail:
                yield tail
            return
        raise self._unreachable(1)

    def _pieces(self, response: Any) -> Iterator[str]:
        """The text pieces of a server-sent event stream, until `[DONE]`."""
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            event = json.loads(data)
            if "error" in event:
                raise ServerError(f"the generation server reported: {event['error']}")
            choices = event.get("choices") or [{}]
            piece = (choices[0].get("delta") or {}).get("content")
            if piece:
                yield piece

    def close(self) -> None:
        self._client.close()


class _Entered:
    """An already-entered `client.stream(...)` context, handed back as a context manager that
    yields the endpoint and its response."""

    def __init__(self, cm: Any, endpoint: Endpoint, response: Any) -> None:
        self._cm, self._endpoint, self._response = cm, endpoint, response

    def __enter__(self) -> tuple[Endpoint, Any]:
        return self._endpoint, self._response

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)
