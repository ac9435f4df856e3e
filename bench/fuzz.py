"""The fuzzing harness of tests/test_hardening_fuzz.py with many more cases (#30).

Each target (question, variants, users and settings files; ingestion of generated files; every CLI
option that takes a value; every HTTP route with and without a session) runs in its own pytest
process with `--examples` Hypothesis cases, new random ones each run. Prints one JSON object: per
target the cases Hypothesis ran, failures, seconds, and the peak resident memory of the processes.

    python bench/fuzz.py                         # 1,500 cases per target
    python bench/fuzz.py --examples 200 --targets question,http
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {
    "question": "test_question_files",
    "variants": "test_variants_files",
    "users": "test_users_files",
    "settings": "test_settings_files",
    "ingest": "test_ingest_generated_files",
    "cli": "test_cli_options_that_take_a_value",
    "http": "test_every_http_route_with_and_without_a_session",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1500, help="Hypothesis cases per target.")
    parser.add_argument("--logs", default=".", help="Folder for each target's pytest output.")
    parser.add_argument("--targets", default=",".join(TARGETS), help="Comma-separated: " + ", ".join(TARGETS))
    args = parser.parse_args()
    env = {**os.environ, "MEDCHAT_FUZZ_EXAMPLES": str(args.examples), "MEDCHAT_FUZZ_RANDOM": "1"}
    results: dict[str, dict[str, object]] = {}
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    unknown = [t for t in args.targets.split(",") if t not in TARGETS]
    if unknown:
        parser.error(f"--targets: no target {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    for target in args.targets.split(","):
        test = f"tests/test_hardening_fuzz.py::{TARGETS[target]}"
        started = time.perf_counter()
        log = Path(args.logs) / f"fuzz-{target}.log"
        with log.open("w") as out:
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    test,
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "--hypothesis-show-statistics",
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
        returncode = os.waitstatus_to_exitcode(status)
        stdout = log.read_text(errors="replace")
        took = time.perf_counter() - started
        counts = [
            tuple(int(n) for n in m)
            for m in re.findall(r"(\d+) passing, (\d+) failing, and (\d+) invalid", stdout)
        ]
        generated = counts[0] if counts else (0, 0, 0)  # the generate phase (shrinking replays cases)
        results[target] = {
            "cases": generated[0] + generated[1],
            "failing": generated[1],
            "passed": returncode == 0,
            "seconds": round(took, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "log": str(log),
        }
        print(target, results[target], file=sys.stderr, flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    total = sum(int(str(r["cases"])) for r in results.values())
    print(
        json.dumps(
            {
                "examples_per_target": args.examples,
                "total_cases": total,
                "peak_rss_mb": round(peak_mb),
                "targets": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
