"""Does ingestion memory stay bounded by the batch, not by the size of a file or the corpus?

Ingests one generated JSON Lines file of N records (about 600 characters each, one chunk per
record) into a fresh MEDCHAT_HOME, in a subprocess per N, with a stand-in embedder that makes
384-dimensional vectors from hashed words (so that the run measures medchat, Chroma and BM25,
not the encoder). Prints each run's peak resident memory at three points: when the files are
read, chunked, embedded and written (the pipeline), and after the BM25 index is rebuilt.

    .venv/bin/python bench/bench_ingest_memory.py                 # N = 2,000 20,000 100,000
    .venv/bin/python bench/bench_ingest_memory.py --sizes 1000 10000

What must stay flat is the pipeline's own share. Two things grow with the corpus by their
nature: Chroma's vector index (N x 384 float32 in its HNSW graph) and the BM25 index, which is
rebuilt in memory from all chunk texts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = (
    "patient dose renal hepatic adverse event trial placebo cohort outcome risk mortality "
    "infection fever pressure insulin glucose statin aspirin asthma inhaler steroid antibiotic "
    "vaccine screening biopsy tumour stage therapy relapse remission symptom diagnosis"
).split()


class HashEmbedder:
    """384-dimensional bag-of-hashed-words vectors: instant and deterministic."""

    id = "bench/hash-384"
    dim = 384

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        v = [0.0] * self.dim
        for word in text.split():
            v[int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_file(path: Path, n: int) -> None:
    rng = random.Random(n)
    with path.open("w") as f:
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(75))
            f.write(json.dumps({"id": f"rec{i}", "title": f"Record {i}", "text": text}) + "\n")


def worker(n: int, home: Path) -> dict[str, object]:
    os.environ["MEDCHAT_HOME"] = str(home)
    from chatbot.settings import Settings
    from ingestion.pipeline import ingest

    home.mkdir(parents=True, exist_ok=True)
    data = home / f"records-{n}.jsonl"
    make_file(data, n)
    settings = Settings()
    base = rss_peak_mib()  # after imports and writing the file
    marks: dict[str, float] = {}

    def progress(path: str, i: int, total: int, embedded: int) -> None:
        if not path:  # called once more when every file is done, before the BM25 rebuild
            marks["pipeline"] = rss_peak_mib()

    t = time.perf_counter()
    report = ingest([data], settings=settings, embedder=HashEmbedder(), progress=progress)
    return {
        "records": n,
        "chunks": report.total_chunks,
        "file_mib": round(data.stat().st_size / 2**20, 1),
        "seconds": round(time.perf_counter() - t, 1),
        "base_mib": round(base, 1),
        "pipeline_peak_mib": round(marks["pipeline"], 1),
        "final_peak_mib": round(rss_peak_mib(), 1),
        "batch_size": settings.ingestion.batch_size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 100000])
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.worker:
        print(json.dumps(worker(ns.worker, Path(ns.home))))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-memory-") as tmp:
        for n in ns.sizes:
            home = Path(tmp) / f"home-{n}"
            cmd = [sys.executable, __file__, "--worker", str(n), "--home", str(home)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    cols = ("records (one file)", "file MiB", "chunks", "s", "after imports", "pipeline peak", "after BM25")
    print("\n| " + " | ".join(cols) + " |")
    print("|---" * len(cols) + "|")
    for r in rows:
        print(
            f"| {r['records']:,} | {r['file_mib']} | {r['chunks']:,} | {r['seconds']} | {r['base_mib']} MiB "
            f"| {r['pipeline_peak_mib']} MiB | {r['final_peak_mib']} MiB |"
        )
    first, last = rows[0], rows[-1]
    grow = float(last["pipeline_peak_mib"]) - float(last["base_mib"])
    grow0 = float(first["pipeline_peak_mib"]) - float(first["base_mib"])
    times = int(last["records"]) // int(first["records"])
    print(
        f"\npipeline share of the peak: {grow0:.0f} MiB at {first['records']:,} records, "
        f"{grow:.0f} MiB at {last['records']:,} ({times}x the records)"
    )


if __name__ == "__main__":
    main()
