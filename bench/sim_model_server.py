"""A simulated OpenAI-compatible model server: fixed token rate, unlimited parallel streams (#31).

It stands in for vLLM, TGI or llama.cpp's server so that the app tier can be measured alone: every
request is answered at the same speed however many arrive together, so any wait a chat user sees
beyond the server's own time to first token is the app's.

    python bench/sim_model_server.py --port 8099 --tokens-per-s 20 --ttft-ms 100

Endpoints (HTTP/1.1, keep-alive, stdlib asyncio only):
* `GET /v1/models`: one model, `sim`.
* `POST /v1/chat/completions` with `"stream": true`: server-sent events, one word per token, after
  `--ttft-ms` (the prefill a real server would do), `max_tokens` of them (capped by `--max-tokens`),
  then `[DONE]`. Without `stream` the whole text comes back in one JSON body, at once.
* `GET /stats`: what it served, for benchmarks: per request the monotonic times (the clock every
  process on this machine shares) it was received, its first token was written, and it ended, plus
  the first `tag-...` word found in its messages (a benchmark puts one in each question to pair its
  own timings with the server's), and the most requests it held at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
from typing import Any

WORDS = (
    "High blood pressure is usually a reading of 140/90 mmHg or more [1]. Lifestyle changes such as "
    "less salt, regular exercise and less alcohol help, and medicines are added when needed [2]. "
    "Check your blood pressure regularly and speak to your doctor about your own target [1]."
).split()
TAG = re.compile(r"tag-[0-9a-z]+")


class SimServer:
    def __init__(self, tokens_per_s: float, ttft_ms: float, max_tokens: int) -> None:
        self.interval = 1.0 / tokens_per_s
        self.ttft = ttft_ms / 1000.0
        self.max_tokens = max_tokens
        self.records: list[dict[str, Any]] = []
        self.open = 0
        self.most_open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on this connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                received = time.monotonic()
                path = path.split("?", 1)[0].rstrip("/")
                if method == "GET" and path == "/v1/models":
                    await self.json(
                        writer, 200, {"object": "list", "data": [{"id": "sim", "object": "model"}]}
                    )
                elif method == "GET" and path == "/stats":
                    await self.json(writer, 200, {"requests": self.records, "most_open": self.most_open})
                elif method == "POST" and path == "/v1/chat/completions":
                    await self.complete(writer, json.loads(body or b"{}"), received)
                else:
                    await self.json(writer, 404, {"error": f"no route {method} {path}"})
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def json(self, writer: asyncio.StreamWriter, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
        writer.write(head.encode() + data)
        await writer.drain()

    async def complete(self, writer: asyncio.StreamWriter, request: dict[str, Any], received: float) -> None:
        n = max(1, min(int(request.get("max_tokens") or self.max_tokens), self.max_tokens))
        found = TAG.search(json.dumps(request.get("messages", [])))
        record: dict[str, Any] = {"tag": found.group(0) if found else "", "received": received, "tokens": n}
        self.records.append(record)
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            if not request.get("stream"):
                await asyncio.sleep(self.ttft + self.interval * (n - 1))
                text = " ".join(WORDS[i % len(WORDS)] for i in range(n))
                record["first"] = record["done"] = time.monotonic()
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length",
                }
                await self.json(
                    writer, 200, {"object": "chat.completion", "model": "sim", "choices": [choice]}
                )
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            await asyncio.sleep(self.ttft)
            start = time.monotonic()
            for i in range(n):
                # on a fixed schedule from the first token: a late wake-up does not slow the rest
                await asyncio.sleep(max(0.0, start + i * self.interval - time.monotonic()))
                piece = (" " if i else "") + WORDS[i % len(WORDS)]
                event = {
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": piece}}],
                }
                await self.chunk(writer, f"data: {json.dumps(event)}\n\n".encode())
                if i == 0:
                    record["first"] = time.monotonic()
            done = {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
            }
            await self.chunk(writer, f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            record["done"] = time.monotonic()
        finally:
            self.open -= 1

    @staticmethod
    async def chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()


async def serve(host: str, port: int, sim: SimServer, ready: Any = None) -> None:
    server = await asyncio.start_server(sim.handle, host, port, backlog=1024)
    if ready is not None:
        ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0: any free port (printed).")
    parser.add_argument("--tokens-per-s", type=float, default=20.0, help="Tokens per second of each stream.")
    parser.add_argument(
        "--ttft-ms", type=float, default=100.0, help="Simulated prefill before the first token."
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="Longest answer, whatever is asked.")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"--host {args.host}: the simulated server listens on this machine only (127.0.0.1)")
    sim = SimServer(args.tokens_per_s, args.ttft_ms, args.max_tokens)

    def ready(port: int) -> None:
        print(f"simulated model server on http://{args.host}:{port}/v1", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, sim, ready))


if __name__ == "__main__":
    main()
