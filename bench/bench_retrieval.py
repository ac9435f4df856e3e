"""Retrieval latency at a 50k-chunk index: medchat's hybrid retrieval beside a bare Chroma query.

    python bench/bench_retrieval.py [--chunks 50000] [--questions 200] [-k 4]

The corpus is real text: MedQuAD answers and COVID-QA articles (about 36k chunks),
chunked by medchat's own chunker and read from ../shared/datasets, with the first
chunks repeated under new source names to reach 50k. The stored vectors are
random unit vectors, because embedding 50k chunks takes about half an hour on these
CPUs and the latency of an HNSW query does not depend on what the vectors mean; the
question embeddings are real. So this measures speed, not retrieval quality (see the
evaluation benchmarks for that).

Printed: p50/p95 (ms) of (1) the query embedding, (2) a bare Chroma query of the same k
with the precomputed query vector, (3) a BM25 query, (4) `Retriever.retrieve()` end to end
(embed + dense + BM25 + fusion). Target: p50(4) <= 2 x p50(2) + p50(1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"


def corpus_docs():
    """MedQuAD answers then COVID-QA articles (about 36k chunks), repeated under new source
    names (so new chunk ids) for as long as the caller wants more."""
    from ingestion.documents import Document, Section

    with open(DATASETS / "medquad" / "medquad_answered.jsonl", encoding="utf-8") as f:
        medquad = [json.loads(line) for line in f]
    covid = json.loads((DATASETS / "covidqa" / "covidqa.json").read_text(encoding="utf-8"))
    for copy in range(100):
        for row in medquad:
            text = row["answer"]
            source = f"medquad{copy}:{row['uid']}"
            yield Document(text, source, row["focus"], {}, [Section("", 0, len(text))])
        for article in covid["data"]:
            for para in article["paragraphs"]:
                text = para["context"]
                source = f"covidqa{copy}:{para['document_id']}"
                yield Document(text, source, "COVID-19 article", {}, [Section("", 0, len(text))])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("-k", type=int, default=4)
    args = parser.parse_args()
    if not DATASETS.is_dir():
        sys.exit(f"skipped: {DATASETS} is absent (the shared datasets are needed)")

    home = Path(tempfile.mkdtemp(prefix="medchat-bench-retrieval-"))
    os.environ["MEDCHAT_HOME"] = str(home)
    from chatbot.retrieval import Retriever
    from chatbot.settings import Settings
    from ingestion.chunking import Chunker
    from ingestion.embedding import SentenceTransformerEmbedder
    from ingestion.index import ChromaIndex, IndexSpec
    from ingestion.lexical import LexicalIndex
    from ingestion.manifest import FileRecord, Manifest

    settings = Settings()
    embedder = SentenceTransformerEmbedder()
    ing = settings.ingestion
    spec = IndexSpec.of(embedder, ing)
    chunker = Chunker.from_settings(settings)

    t = time.perf_counter()
    index = ChromaIndex.open(settings.chroma_dir, settings.store.collection, spec, create=True)
    manifest = Manifest(settings.manifest_path, spec.as_metadata())
    rng = np.random.default_rng(0)
    total = 0
    batch: list = []
    for doc in corpus_docs():
        chunks = chunker.chunk(doc)[: args.chunks - total]
        if not chunks:
            continue
        batch.append((FileRecord(doc.source, 0, 0, "", len(chunks)), chunks))
        total += len(chunks)
        if sum(len(c) for _, c in batch) >= 2000 or total >= args.chunks:
            flat = [c for _, cs in batch for c in cs]
            vectors = rng.normal(size=(len(flat), embedder.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            index.add(flat, vectors.tolist())
            manifest.commit_files(batch)
            batch = []
        if total >= args.chunks:
            break
    lexical = LexicalIndex.open(settings, spec, manifest)
    lexical.rebuild()
    print(
        f"built: {index.count()} chunks in Chroma, {lexical.count()} in BM25, {time.perf_counter() - t:.0f} s"
    )

    questions = []
    with open(DATASETS / "medquad" / "medquad_answered.jsonl", encoding="utf-8") as f:
        for line in f:
            questions.append(json.loads(line)["question"])
    questions = [
        questions[i] for i in np.random.default_rng(1).choice(len(questions), args.questions, replace=False)
    ]

    retriever = Retriever(index, embedder, args.k, lexical=lexical, candidates=settings.retrieval.candidates)
    for q in questions[:5]:  # warm up
        retriever.retrieve(q)
    embed, bare, bm25, full = [], [], [], []
    for q in questions:
        t0 = time.perf_counter()
        vec = embedder.embed_query(q)
        embed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.query(vec, args.k)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lexical.query(q, settings.retrieval.candidates)
        bm25.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        retriever.retrieve(q)
        full.append(time.perf_counter() - t0)

    n_candidates = settings.retrieval.candidates
    print(f"{len(questions)} MedQuAD questions, k={args.k}, {n_candidates} candidates per retriever")
    print(f"{'step':<42} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in (
        ("(1) query embedding", embed),
        ("(2) bare Chroma query, same k", bare),
        ("(3) BM25 query", bm25),
        ("(4) medchat retrieve (1+dense+3+fusion)", full),
    ):
        print(f"{name:<42} {pct(values, 50):>8.1f} {pct(values, 95):>8.1f}")
    target = 2 * statistics.median(bare) + statistics.median(embed)
    verdict = "met" if statistics.median(full) <= target else "NOT met"
    print(f"target p50(4) <= 2 x p50(2) + p50(1) = {target * 1000:.1f} ms: {verdict}")


if __name__ == "__main__":
    main()
