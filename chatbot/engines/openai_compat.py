"""An OpenAI-compatible HTTP server as the engine: vLLM, TGI, Ollama, the llama.cpp server.

Streams `/chat/completions` over server-sent events. Connection errors, 429 and 5xx answers
are retried with exponential backoff before the first token arrives; once text has been
shown, a broken stream is reported rather than silently restarted. Closing the stream closes
the HTTP response, which tells the server to stop.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

from chatbot.engines.base import ChatMessage, GenerationParams, StopFilter, approx_prompt_tokens
from chatbot.errors import DependencyMissingError, ServerError, ServerUnreachableError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompatEngine:
    """Chat completions from a server at `base_url` (ending in `/v1`)."""

    quantization = "server"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080/v1",
        *,
        model: str = "",
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        extended_params: bool = True,
        n_ctx: int = 4096,
    ) -> None:
        try:
            import httpx
        except ImportError as e:  # pragma: no cover - httpx is a core dependency
            raise DependencyMissingError("the openai engine needs httpx: run `pip install httpx`") from e
        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.retries = retries
        self.backoff_s = backoff_s
        self.extended_params = extended_params
        self.n_ctx = n_ctx
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s)
        )
        self._model = model
        self.name = f"openai:{model or '?'}@{self.base_url}"

    @property
    def model(self) -> str:
        """The model name sent to the server; asked of the server when not configured."""
        if not self._model:
            listed = self._request("GET", "/models").json().get("data") or []
            if not listed:
                raise ServerError(
                    f"{self.base_url}/models lists no model: set MEDCHAT_GENERATION__SERVER_MODEL"
                )
            self._model = str(listed[0]["id"])
            self.name = f"openai:{self._model}@{self.base_url}"
        return self._model

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

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A plain request with retries (for `/models`)."""
        with self._open(method, path, **kwargs) as response:
            response.read()
            return response

    def _open(self, method: str, path: str, **kwargs: Any) -> Any:
        """A context manager for a streamed response that answered 2xx, after retries."""
        httpx = self._httpx
        url = f"{self.base_url}{path}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.info("retrying %s in %.2fs (%s)", url, delay, last)
                time.sleep(delay)
            try:
                cm = self._client.stream(method, url, **kwargs)
                response = cm.__enter__()
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if response.status_code < 400:
                return _Entered(cm, response)
            body = response.read().decode("utf-8", "replace")[:300]
            cm.__exit__(None, None, None)
            last = f"HTTP {response.status_code}: {body}"
            if response.status_code in RETRY_STATUS:
                continue
            hint = (
                f"check the API key in ${self.api_key_env}"
                if response.status_code in (401, 403)
                else "check MEDCHAT_GENERATION__SERVER_MODEL and the generation settings"
            )
            raise ServerError(f"the generation server at {url} refused the request ({last}): {hint}")
        raise ServerUnreachableError(
            f"cannot get an answer from the generation server at {url} after {self.retries + 1} "
            f"attempts (last: {last}): start the server, or fix MEDCHAT_GENERATION__BASE_URL"
        )

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        stop = StopFilter(params.stop)
        with self._open("POST", "/chat/completions", json=self._payload(messages, params)) as response:
            try:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = json.loads(data)
                    if "error" in event:
                        raise ServerError(f"the generation server reported: {event['error']}")
                    choices = event.get("choices") or [{}]
                    piece = (choices[0].get("delta") or {}).get("content")
                    if piece:
                        shown = stop.feed(piece)
                        if shown:
                            yield shown
                        if stop.stopped:
                            return
            except self._httpx.TransportError as e:
                raise ServerUnreachableError(
                    f"the generation server at {self.base_url} broke off the answer ({e}): try again"
                ) from e
        tail = stop.flush()
        if tail:
            yield tail

    def close(self) -> None:
        self._client.close()


class _Entered:
    """An already-entered `client.stream(...)` context, handed back as a context manager."""

    def __init__(self, cm: Any, response: Any) -> None:
        self._cm, self._response = cm, response

    def __enter__(self) -> Any:
        return self._response

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)
