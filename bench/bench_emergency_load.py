"""How long an emergency message waits for its answer while other chat users are generating (#30).

A real server is launched as `medchat serve` launches it (its middleware, queue and thread pool) on
a fresh index of the sample notes, with the bundled model (llama.cpp) or, with `--engine fake`, a
fake engine that writes each word after a pause. `--users` simulated chat users (gradio_client,
each in its own thread) ask routine questions back to back; once every one of them has asked, one
more client sends an emergency message every `--every` seconds, `--emergencies` times, and times
each from submit to the finished answer. The same emergency messages are first timed on the idle
server. Prints one JSON object: idle and loaded p50/p95/max, and how many chat answers were being
written or waiting for the model at each emergency (so a fast figure cannot come from an idle app).

    python bench/bench_emergency_load.py                      # 20 users, the bundled model writing
    python bench/bench_emergency_load.py --engine fake --users 20 --emergencies 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ROUTINE = [
    "What blood pressure counts as high?",
    "How is asthma treated?",
    "What should I avoid while taking warfarin?",
    "What is a normal HbA1c for someone with diabetes?",
    "What helps a migraine?",
]
EMERGENCIES = [
    "My father has crushing chest pain and can't breathe",
    "my wife's face is drooping and her speech is slurred",
    "I took a whole bottle of paracetamol an hour ago",
    "my baby is floppy and blue around the lips",
    "he collapsed and is not breathing",
]
NOTES = ("hypertension.md", "type-2-diabetes.md", "asthma.md", "warfarin.md", "migraine.md")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_s": round(statistics.median(values), 3),
        "p95_s": round(percentile(values, 0.95), 3),
        "max_s": round(max(values), 3),
    }


def chat_users(url: str, n: int, in_flight: Any, asked: Any, answered: Any, stop: Any) -> None:
    """`n` chat users asking routine questions back to back until `stop` (run in its own process)."""
    from gradio_client import Client

    def user(k: int) -> None:
        client = Client(url, verbose=False)
        i = k
        while not stop.is_set():
            with in_flight.get_lock():
                in_flight.value += 1
            with asked.get_lock():
                asked.value += 1
            try:
                client.predict(ROUTINE[i % len(ROUTINE)], [], api_name="/ask")
            finally:
                with in_flight.get_lock():
                    in_flight.value -= 1
                with answered.get_lock():
                    answered.value += 1
            i += 1

    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--emergencies", type=int, default=20)
    parser.add_argument("--every", type=float, default=2.0, help="Seconds between emergency messages.")
    parser.add_argument("--engine", choices=["llamacpp", "fake"], default="llamacpp")
    parser.add_argument("--new-tokens", type=int, default=64, help="Longest routine answer (tokens).")
    parser.add_argument(
        "--grounding",
        choices=["free", "checked", "extractive"],
        default="free",
        help="How chat answers are made: `free` (the default here) has the model write every one, so the "
        "chat users really generate; the app's own default, `extractive`, needs no model call.",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="medchat-bench-emergency-"))
    os.environ["MEDCHAT_HOME"] = str(home)
    os.environ["MEDCHAT_GENERATION__MAX_NEW_TOKENS"] = str(args.new_tokens)
    os.environ["MEDCHAT_GENERATION__GROUNDING"] = args.grounding
    os.environ["MEDCHAT_GENERATION__ENGINE"] = "llamacpp" if args.engine == "llamacpp" else "fake"

    from gradio_client import Client

    from chatbot.chain import Chain
    from chatbot.engines.fake import FakeEngine
    from chatbot.labelling.store.prefs import open_store
    from chatbot.labelling.variants import Variant
    from chatbot.settings import Settings
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import Users
    from chatbot.ui.serve import MAX_THREADS, guard_middleware, launch_options, trust_forwarded_from
    from ingestion.pipeline import ingest

    settings = Settings()
    ingest([REPO / "data" / "corpus" / name for name in NOTES], settings=settings)

    class SlowFake(FakeEngine):
        """A fake that takes as long as a small model: a word every 50 ms, one answer at a time."""

        lock = threading.Lock()

        def stream(self, messages: Any, params: Any) -> Any:
            with self.lock:
                for piece in super().stream(messages, params):
                    time.sleep(0.05)
                    yield piece

    chain = Chain(settings, engine=SlowFake() if args.engine == "fake" else None)
    chain.answer(ROUTINE[0])  # the encoder, the index, the classifier and the model loaded
    users = Users({})
    app = build_app(
        chain, store=open_store(settings), variants=[Variant("a", k=3), Variant("b", k=4)], users=users
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    trust_forwarded_from([])
    app.queue(default_concurrency_limit=4).launch(
        **launch_options(guard_middleware(settings.limits), limits=settings.limits),
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        max_threads=MAX_THREADS,
    )
    url = f"http://127.0.0.1:{port}/"

    def emergency(client: Client, message: str) -> float:
        t = time.perf_counter()
        _, _, _, status = client.predict(message, [], api_name="/ask")
        took = time.perf_counter() - t
        if not status.startswith("Emergency guidance shown"):
            raise SystemExit(f"not answered as an emergency: {message!r} -> {status!r}")
        return took

    sender = Client(url, verbose=False)
    idle = [emergency(sender, EMERGENCIES[i % len(EMERGENCIES)]) for i in range(len(EMERGENCIES) * 2)]

    # the chat users live in another process, so that their 20 clients do not compete with the server
    # for this one's interpreter lock (the measured wait would be the benchmark's, not the app's)
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    in_flight, asked, answered, stop = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0), ctx.Event()
    shared = (in_flight, asked, answered, stop)
    load = ctx.Process(target=chat_users, args=(url, args.users, *shared), daemon=True)
    load.start()
    deadline = time.monotonic() + 300
    while asked.value < args.users and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # everyone's first question is in: generating, or waiting for the model
    loaded, busy = [], []
    for i in range(args.emergencies):
        busy.append(in_flight.value)
        loaded.append(emergency(sender, EMERGENCIES[i % len(EMERGENCIES)]))
        time.sleep(args.every)
    stop.set()
    result = {
        "engine": args.engine,
        "grounding": args.grounding,
        "users": args.users,
        "idle": summary(idle),
        "under_load": summary(loaded),
        "chat_answers_in_flight_at_each_emergency": {"min": min(busy), "max": max(busy)},
        "chat_answers_finished_meanwhile": answered.value,
    }
    print(json.dumps(result, indent=2))
    load.terminate()
    app.close()
    os._exit(0)  # the chat users' last requests are not waited for


if __name__ == "__main__":
    main()
