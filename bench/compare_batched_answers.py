"""Are greedy answers the same from llama-server's batch as from one stream at a time? (#31)

On the sample index (`medchat ingest --sample` into a fresh MEDCHAT_HOME unless `--home` has one),
temperature 0, the model's own text (`Answer.raw_text`) for each question, three ways:
1. the in-process llama.cpp engine (one answer at a time);
2. llama-server (`make llama-server`, `--slots` slots), one question at a time;
3. the same server, every question at once (decoded together in its batch).
Prints one JSON object: per question whether 2 and 3 equal 1 and where they first differ.

    python bench/compare_batched_answers.py --slots 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUESTIONS = [
    "What blood pressure counts as high?",
    "How is asthma treated?",
    "What should I avoid while taking warfarin?",
    "What is a normal HbA1c for someone with diabetes?",
    "What helps a migraine?",
]


def first_difference(a: str, b: str) -> int | None:
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="medchat-bench-batched-"))
    os.environ.update(
        MEDCHAT_HOME=str(home),
        MEDCHAT_GENERATION__GROUNDING="free",
        MEDCHAT_GENERATION__TEMPERATURE="0",
        MEDCHAT_GENERATION__MAX_NEW_TOKENS=str(args.new_tokens),
    )
    if not (home / ".bench-ingested").exists():
        cmd = [sys.executable, "-m", "chatbot.cli", "ingest", "--sample"]
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        (home / ".bench-ingested").touch()

    from chatbot.chain import Chain
    from chatbot.engines.openai_compat import OpenAICompatEngine
    from chatbot.model_server import for_settings
    from chatbot.settings import Settings

    settings = Settings()
    local = Chain(settings)
    in_process = [local.answer(q).raw_text for q in QUESTIONS]
    with for_settings(settings.generation, args.slots) as server:
        engine = OpenAICompatEngine(server.url, max_connections=args.slots + 4)
        served = Chain(settings, engine=engine)
        one_by_one = [served.answer(q).raw_text for q in QUESTIONS]
        with ThreadPoolExecutor(len(QUESTIONS)) as pool:
            together = list(pool.map(lambda q: served.answer(q).raw_text, QUESTIONS))
    out = {
        "slots": args.slots,
        "model": server.model.name,
        "questions": [
            {
                "question": q,
                "server_one_at_a_time_same": a == b,
                "server_batched_same": a == c,
                "first_difference_one_at_a_time": first_difference(a, b),
                "first_difference_batched": first_difference(a, c),
                "in_process": a,
                **({"server": b} if a != b else {}),
                **({"batched": c} if a != c else {}),
            }
            for q, a, b, c in zip(QUESTIONS, in_process, one_by_one, together, strict=True)
        ],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
