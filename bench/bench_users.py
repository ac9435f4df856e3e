"""Many chat users on one `medchat serve`: what the app adds to the model's time to first token (#31).

Starts, on 127.0.0.1 and in a fresh MEDCHAT_HOME with the sample notes indexed (`medchat ingest
--sample`), a model server and `medchat serve` in front of it, then `--users` simulated chat users
who each ask `--questions` questions (a new conversation each, `--think-s` apart at most) and wait
for every answer. Chat answers are written by the model (grounding `free`; the app's default,
`extractive`, calls no model). The model is, by `--model`:

* `sim` (default): bench/sim_model_server.py, `--tokens-per-s` per stream, `--ttft-ms` of prefill,
  unlimited parallel streams. Each question carries a tag the server logs with the monotonic times
  it received the request and wrote its first token, so each answer's client-side time to first
  token is paired with the server's own: the difference is what the app adds (`app_added_ttft`),
  split into the time before the app asks the model (triage, retrieval, prompt) and the time from
  the model's first token to the user's screen.
* `llamacpp`: the bundled GGUF in the app's own process (one answer at a time).
* `llama-server`: llama.cpp's server with `--slots` parallel slots and continuous batching, started
  by `medchat serve --model-server N` (build it with `make llama-server`).

The users speak Gradio's queue protocol directly (join, then the session's event stream) with
httpx on one asyncio loop, as a browser does: gradio_client polls each job every 50 ms, which would
round every first token up by up to 50 ms and, with hundreds of jobs, spend the cores the server
needs. The loop's own lateness is reported (`client_loop_lag_ms`) so that an overloaded client
cannot pass for a slow app. With `--emergencies`, an emergency message is sent every `--every`
seconds while the users are asking, and timed to its finished answer (bench_emergency_load.py).

    python bench/bench_users.py --users 200                       # the app tier alone
    python bench/bench_users.py --users 200 --parallel 4          # as before #31: 4 answers at once
    python bench/bench_users.py --model llamacpp --users 20 --new-tokens 64 --emergencies 10
    python bench/bench_users.py --model llama-server --slots 20 --users 20 --new-tokens 64 --emergencies 10

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# the same routine questions and emergency messages as the emergency-under-load benchmark
from bench.bench_emergency_load import EMERGENCIES, ROUTINE, percentile  # noqa: E402


def summary(values: list[float], scale: float = 1000.0, unit: str = "ms") -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        f"p50_{unit}": round(statistics.median(values) * scale, 1),
        f"p95_{unit}": round(percentile(values, 0.95) * scale, 1),
        f"max_{unit}": round(max(values) * scale, 1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[Any], log: Path, what: str, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:.0f} s: see {log}")


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[Any]:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the model server it started goes too
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def text_of(content: Any) -> str:
    """A chat message's text: Gradio 6 sends content as a list of parts ({"type": "text", ...})."""
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


class Users:
    """Chat users on one asyncio loop, speaking Gradio's queue protocol."""

    def __init__(self, url: str, fn_index: int, inputs: list[Any]) -> None:
        import httpx

        self.url, self.fn_index, self.inputs = url, fn_index, inputs
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(600, connect=30),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        )
        self.results: list[dict[str, Any]] = []

    async def ask(self, question: str, session: str) -> dict[str, Any]:
        """One question in a new conversation: monotonic times of sending, first answer text, end."""
        from gradio_client.utils import apply_diff

        record: dict[str, Any] = {"question": question, "sent": time.monotonic()}
        data = [question, [], *self.inputs]
        joined = await self.http.post(
            f"{self.url}gradio_api/queue/join",
            json={"data": data, "fn_index": self.fn_index, "session_hash": session},
        )
        if joined.status_code != 200:
            record["error"] = f"join: HTTP {joined.status_code}: {joined.text[:200]}"
            return record
        event = joined.json()["event_id"]
        outputs: list[Any] | None = None
        async with self.http.stream(
            "GET", f"{self.url}gradio_api/queue/data", params={"session_hash": session}
        ) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "close_stream" or msg.get("event_id") not in (event, None):
                    continue
                kind = msg.get("msg")
                if kind == "process_generating":
                    out = msg["output"].get("data") or []
                    outputs = (
                        list(out)
                        if outputs is None
                        else [apply_diff(o, d) for o, d in zip(outputs, out, strict=True)]
                    )
                    history = outputs[1] if len(outputs) > 1 else []
                    if "first" not in record and history and text_of(history[-1].get("content")).strip():
                        record["first"] = time.monotonic()
                elif kind == "process_completed":
                    record["done"] = time.monotonic()
                    output = msg.get("output") or {}
                    if not msg.get("success", False):
                        record["error"] = str(output.get("error") or output)[:300]
                    else:
                        final = output.get("data") or []
                        record["status"] = str(final[3]) if len(final) > 3 else ""
                        history = final[1] if len(final) > 1 else []
                        record["text"] = text_of(history[-1].get("content")) if history else ""
                        record.setdefault("first", record["done"])
                        if record["status"].startswith("Not answered"):
                            record["error"] = record["status"][:300]
                    return record
        record["error"] = "the event stream ended before the answer"
        return record

    async def user(self, k: int, questions: int, think_s: float, delay: float) -> None:
        await asyncio.sleep(delay)
        rng = random.Random(k)
        for i in range(questions):
            question = f"{ROUTINE[(k + i) % len(ROUTINE)]} tag-u{k}q{i}"
            try:
                record = await self.ask(question, f"user{k}x{i}{rng.randrange(1 << 30):x}")
            except Exception as e:  # counted as an error, never hidden
                record = {"question": question, "error": f"{type(e).__name__}: {e}"}
            record["tag"] = f"tag-u{k}q{i}"
            self.results.append(record)
            if i + 1 < questions:
                await asyncio.sleep(rng.uniform(0, think_s))


async def lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    """How late this loop wakes up: its own overload, reported beside the figures."""
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(0.05)
        samples.append(time.monotonic() - t - 0.05)


async def emergencies(users: Users, n: int, every: float, first_delay: float) -> list[dict[str, Any]]:
    await asyncio.sleep(first_delay)
    out = []
    for i in range(n):
        record = await users.ask(EMERGENCIES[i % len(EMERGENCIES)], f"emergency{i}")
        if not str(record.get("status", "")).startswith("Emergency guidance shown"):
            record["error"] = f"not answered as an emergency: {record.get('status') or record.get('error')}"
        out.append(record)
        await asyncio.sleep(every)
    return out


async def drive(url: str, args: argparse.Namespace, fn_index: int, inputs: list[Any]) -> dict[str, Any]:
    users = Users(url, fn_index, inputs)
    lags: list[float] = []
    stop_probe = asyncio.Event()
    probe = asyncio.create_task(lag_probe(lags, stop_probe))
    idle = [await users.ask(EMERGENCIES[i % len(EMERGENCIES)], f"idle{i}") for i in range(args.emergencies)]
    started = time.monotonic()
    tasks = [
        users.user(k, args.questions, args.think_s, args.ramp_s * k / max(1, args.users))
        for k in range(args.users)
    ]
    extra = [emergencies(users, args.emergencies, args.every, args.ramp_s + 1.0)] if args.emergencies else []
    gathered = await asyncio.gather(*tasks, *extra)
    wall = time.monotonic() - started
    stop_probe.set()
    await probe
    await users.http.aclose()
    loaded = gathered[-1] if extra else []
    return {"results": users.results, "wall_s": wall, "lags": lags, "idle": idle, "loaded": loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["sim", "llamacpp", "llama-server"], default="sim")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--questions", type=int, default=3, help="Questions each user asks.")
    parser.add_argument(
        "--think-s", type=float, default=2.0, help="Longest pause between a user's questions."
    )
    parser.add_argument("--ramp-s", type=float, default=5.0, help="Users start evenly over this time.")
    parser.add_argument("--new-tokens", type=int, default=40, help="Answer length (max_new_tokens).")
    parser.add_argument("--tokens-per-s", type=float, default=20.0, help="sim: tokens per second per stream.")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="sim: prefill before the first token.")
    parser.add_argument(
        "--parallel", type=int, default=None, help="generation.parallel (default: the app's)."
    )
    parser.add_argument("--slots", type=int, default=20, help="llama-server: parallel slots.")
    parser.add_argument("--emergencies", type=int, default=0, help="Emergency messages sent during the load.")
    parser.add_argument("--every", type=float, default=2.0, help="Seconds between emergency messages.")
    parser.add_argument("--keep", action="store_true", help="Keep the MEDCHAT_HOME and the logs.")
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="Use (and keep) this MEDCHAT_HOME; the sample is ingested once.",
    )
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="medchat-bench-users-"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        "MEDCHAT_HOME": str(home),
        "MEDCHAT_GENERATION__GROUNDING": "free",
        "MEDCHAT_GENERATION__MAX_NEW_TOKENS": str(args.new_tokens),
    }
    if args.parallel is not None:
        env["MEDCHAT_GENERATION__PARALLEL"] = str(args.parallel)
    py = [sys.executable]
    if not (home / ".bench-ingested").exists():
        subprocess.run(
            [*py, "-m", "chatbot.cli", "ingest", "--sample"], env=env, check=True, capture_output=True
        )
        (home / ".bench-ingested").touch()

    procs: list[subprocess.Popen[Any]] = []
    sim_url = ""
    serve_args: list[str] = []
    if args.model == "sim":
        port = free_port()
        sim_url = f"http://127.0.0.1:{port}"
        log = home / "sim.log"
        cmd = [*py, str(REPO / "bench" / "sim_model_server.py"), "--port", str(port)]
        cmd += ["--tokens-per-s", str(args.tokens_per_s), "--ttft-ms", str(args.ttft_ms)]
        cmd += ["--max-tokens", str(args.new_tokens)]
        procs.append(start(cmd, env, log))
        wait_for(f"{sim_url}/v1/models", procs[-1], log, "the simulated model server", 60)
        env["MEDCHAT_GENERATION__ENGINE"] = "openai"
        env["MEDCHAT_GENERATION__BASE_URL"] = f"{sim_url}/v1"
    elif args.model == "llama-server":
        serve_args = ["--model-server", str(args.slots)]
    else:
        env["MEDCHAT_GENERATION__ENGINE"] = "llamacpp"

    app_port = free_port()
    url = f"http://127.0.0.1:{app_port}/"
    log = home / "serve.log"
    cmd = [*py, "-m", "chatbot.cli", "serve", "--no-login", "--port", str(app_port), *serve_args]
    procs.append(start(cmd, env, log))
    try:
        wait_for(url, procs[-1], log, "medchat serve", 600)
        from gradio_client import Client

        client = Client(url, verbose=False)
        fn_index = client._infer_fn_index("/ask", None)
        params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/ask"][
            "parameters"
        ]
        inputs = [p.get("parameter_default") for p in params[2:]]
        # a first answer loads everything (the encoder, the classifier, the model) before the clock starts
        client.predict(ROUTINE[0], [], api_name="/ask")
        if sim_url:
            import httpx

            warm = len(httpx.get(f"{sim_url}/stats").json()["requests"])
        load_before = os.getloadavg()
        run = asyncio.run(drive(url, args, fn_index, inputs))
        load_after = os.getloadavg()
        server: dict[str, Any] = {}
        if sim_url:
            server = httpx.get(f"{sim_url}/stats").json()
            server["requests"] = server["requests"][warm:]
    finally:
        for proc in reversed(procs):
            stop(proc)

    results = run["results"]
    errors = [r for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    ttft = [r["first"] - r["sent"] for r in ok]
    finish = [r["done"] - r["sent"] for r in ok]
    words = sum(len(re.findall(r"\S+", r.get("text", ""))) for r in ok)
    out: dict[str, Any] = {
        "model": args.model,
        "users": args.users,
        "questions_each": args.questions,
        "new_tokens": args.new_tokens,
        "parallel": args.parallel,
        "answers": len(ok),
        "errors": len(errors),
        "error_examples": sorted({str(r["error"])[:160] for r in errors})[:5],
        "ttft": summary(ttft),
        "finish": summary(finish, 1.0, "s"),
        "wall_s": round(run["wall_s"], 1),
        "answer_words_per_s": round(words / run["wall_s"], 1),
        "client_loop_lag_ms": summary(run["lags"]),
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in load_after],
        },
    }
    if args.model == "llama-server":
        out["slots"] = args.slots
    if sim_url:
        by_tag = {r["tag"]: r for r in server["requests"] if r.get("tag") and "first" in r}
        paired = [(r, by_tag[r["tag"]]) for r in ok if r["tag"] in by_tag]
        out["sim"] = {
            "tokens_per_s_per_stream": args.tokens_per_s,
            "ttft_ms": args.ttft_ms,
            "most_streams_at_once": server["most_open"],
            "server_ttft": summary([s["first"] - s["received"] for _, s in paired]),
            "tokens_per_s_all_streams": round(sum(s["tokens"] for _, s in paired) / run["wall_s"], 1),
        }
        out["paired"] = len(paired)
        out["app_added_ttft"] = summary(
            [(c["first"] - c["sent"]) - (s["first"] - s["received"]) for c, s in paired]
        )
        out["app_before_model"] = summary([s["received"] - c["sent"] for c, s in paired])
        out["model_first_token_to_user"] = summary([c["first"] - s["first"] for c, s in paired])
    if args.emergencies:
        for key in ("idle", "loaded"):
            recs = run[key]
            bad = [r for r in recs if "error" in r]
            out[f"emergency_{key}"] = {
                **summary([r["done"] - r["sent"] for r in recs if "error" not in r]),
                "errors": len(bad),
            }
    if args.keep or args.home:
        out["home"] = str(home)
    else:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
