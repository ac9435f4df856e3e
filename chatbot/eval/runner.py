"""Run one evaluation: ingest the benchmark's corpus, score retrieval or answers, write the report.

Benchmark corpora are indexed apart from the user's own index, under
`eval.work_dir`, one collection per corpus content (so a rerun on the same
sample reuses the index and a different sample never mixes with it).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.eval import datasets as ds
from chatbot.eval.metrics import (
    accuracy,
    hit_at_k,
    latency_summary,
    macro_f1,
    majority_baseline,
    mean,
    ndcg_at_k,
    parse_choice,
    parse_yes_no_maybe,
    recall_at_k,
    reciprocal_rank,
)
from prompts import PROMPTS_DIR

if TYPE_CHECKING:
    from chatbot.engines.base import Engine
    from chatbot.retrieval import Passage, Retriever
    from chatbot.settings import Settings
    from ingestion.embedding import Embedder
    from ingestion.index import ChromaIndex, Hit
    from ingestion.lexical import LexicalIndex

log = logging.getLogger(__name__)

RETRIEVAL = ("medquad", "covidqa", "pubmedqa-retrieval", "generic")
ANSWERS = ("pubmedqa", "mirage")
DATASETS = RETRIEVAL + ANSWERS
METHODS = ("dense", "bm25", "hybrid")
TEMPLATES = PROMPTS_DIR / "eval"  # the benchmark prompts are prompt files like the others


@dataclass
class EvalOptions:
    dataset: str
    path: Path
    outdir: Path
    limit: int | None = None
    seed: int = 0
    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 5, 10, 20, 32])
    corpus_limit: int | None = None
    questions: Path | None = None
    modes: list[str] | None = None
    answers: int = 0
    """Retrieval benchmarks: also answer this many sampled questions through the full chain."""
    corpus: Path | None = None
    """For answer benchmarks: a corpus to ingest and retrieve from (default: see `run_choices`)."""


def _bar(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="q", file=sys.stderr, disable=not sys.stderr.isatty())


def corpus_settings(settings: Settings, corpus: Sequence[Path], name: str) -> Settings:
    """Settings for a benchmark corpus's own index under `eval.work_dir`."""
    h = hashlib.sha256()
    for path in corpus:
        h.update(str(path.resolve()).encode())
        h.update(ds.sha256_file(path).encode())
    # the index paths all derive from `home` and the collection (`Settings.index_dir` and the rest),
    # so naming those two redirects every file of the index; nothing else is rewritten
    store = settings.store.model_copy(
        update={"mode": "embedded", "chroma_path": None, "collection": f"eval-{h.hexdigest()[:16]}"}
    )  # one index per corpus content
    ingestion = settings.ingestion.model_copy(
        update={
            "jsonl_text_field": "text",
            "jsonl_id_field": "id",
            "jsonl_title_field": "title",
            "prune": False,
        }
    )
    return settings.model_copy(
        update={"home": settings.eval_work_dir / "home", "store": store, "ingestion": ingestion}, deep=True
    )


def build_index(
    settings: Settings, corpus: Sequence[Path], name: str, embedder: Embedder
) -> tuple[Settings, ChromaIndex, LexicalIndex, dict[str, Any]]:
    """Ingest the corpus into its own collection (a no-op when already there)."""
    from ingestion.index import IndexSpec, open_index
    from ingestion.lexical import LexicalIndex
    from ingestion.pipeline import ingest

    esettings = corpus_settings(settings, corpus, name)
    report = ingest(list(corpus), settings=esettings, embedder=embedder)
    failed = [f.reason for f in report.files if f.status == "failed"]
    if failed:
        raise ds.EvalDataError(f"the benchmark corpus could not be ingested: {failed[0]}")
    spec = IndexSpec.of(embedder, esettings.ingestion)
    index = open_index(esettings, spec)
    lexical = LexicalIndex.open(esettings, spec)
    info = {
        "collection": esettings.store.collection,
        "chunks": report.total_chunks,
        "chunks_embedded_now": report.chunks_embedded,
        "ingest_s": round(report.seconds, 2),
    }
    return esettings, index, lexical, info


class _CachedQueryEmbedder:
    """Embeds each query once although dense and hybrid retrieval both ask for it."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.id, self.dim = inner.id, inner.dim
        self._last: tuple[str, list[float]] | None = None

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        if self._last is None or self._last[0] != text:
            self._last = (text, self.inner.embed_query(text))
        return self._last[1]


def _gold_of(hit_meta: dict[str, Any], key: str) -> str | None:
    value = hit_meta.get(key)
    return str(value) if value not in (None, "") else None


def _span_hit(hits: Sequence[Any], spans: Sequence[tuple[str, int, int]], key: str, k: int) -> float:
    """1 when a top-k chunk of the gold document overlaps the gold answer span."""
    for h in hits[:k]:
        meta = h.metadata
        for did, start, end in spans:
            inside = int(meta.get("char_start", -1)) < end and int(meta.get("char_end", -1)) > start
            if inside and _gold_of(meta, key) == did:
                return 1.0
    return 0.0


def run_retrieval(
    task: ds.RetrievalTask,
    settings: Settings,
    ks: Sequence[int],
    embedder: Embedder,
    *,
    answers: int = 0,
    engine: Engine | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """recall@k, MRR and nDCG for dense, BM25 and hybrid retrieval; one record per question.

    With `answers`, that many of the sampled questions are also answered by the full chain
    over the benchmark index, for abstention, citation and latency figures.
    """
    from chatbot.retrieval import Retriever
    from chatbot.safety.emergency import EmergencyGate

    esettings, index, lexical, info = build_index(settings, task.corpus, task.name, embedder)
    depth = max(ks)
    cached = _CachedQueryEmbedder(embedder)
    r = esettings.retrieval
    hybrid = Retriever(
        index,
        cached,
        depth,
        lexical=lexical,
        candidates=r.candidates,
        dense_weight=r.dense_weight,
        lexical_weight=r.lexical_weight,
    )
    gate = EmergencyGate(settings.safety)
    timings: dict[str, list[float]] = defaultdict(list)
    per_q: list[dict[str, Any]] = []
    ranked_by: dict[str, list[list[str | None]]] = {m: [] for m in METHODS}
    spans_by: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    emergencies = abstain = 0
    bar = _bar(len(task.questions), task.name)
    for q in task.questions:
        emergencies += gate.check(q.question) is not None
        t = time.perf_counter()
        vector = cached.embed_query(q.question)
        timings["embed_query_s"].append(time.perf_counter() - t)
        t = time.perf_counter()
        dense = index.query(vector, depth)
        timings["dense_search_s"].append(time.perf_counter() - t)
        t = time.perf_counter()
        bm25 = lexical.query(q.question, depth)
        timings["bm25_s"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fused = hybrid.retrieve(q.question, k=depth)
        timings["hybrid_s"].append(time.perf_counter() - t)  # the query embedding is reused
        best = max((h.score for h in dense), default=0.0)
        abstain += best < r.min_score
        hits: dict[str, Sequence[Hit | Passage]] = {"dense": dense, "bm25": bm25, "hybrid": fused}
        record: dict[str, Any] = {"qid": q.qid, "question": q.question, "gold": sorted(q.gold)}
        for method, found in hits.items():
            ranked = [_gold_of(h.metadata, task.gold_key) for h in found]
            ranked_by[method].append(ranked)
            record[f"{method}_rank"] = next(
                (i for i, d in enumerate(ranked, start=1) if d is not None and d in q.gold), None
            )
            if q.spans:
                spans_by[method].append([_span_hit(found, q.spans, task.gold_key, k) for k in ks])
        record["best_dense_score"] = round(best, 4)
        per_q.append(record)
        bar.update(1)
    bar.close()
    golds = [q.gold for q in task.questions]
    methods: dict[str, Any] = {}
    for method in METHODS:
        rankings = ranked_by[method]
        m: dict[str, Any] = {
            "recall": {
                str(k): mean(recall_at_k(x, g, k) for x, g in zip(rankings, golds, strict=True)) for k in ks
            },
            "hit": {
                str(k): mean(hit_at_k(x, g, k) for x, g in zip(rankings, golds, strict=True)) for k in ks
            },
            "ndcg": {
                str(k): mean(ndcg_at_k(x, g, k) for x, g in zip(rankings, golds, strict=True)) for k in ks
            },
            "mrr": mean(reciprocal_rank(x, g, depth) for x, g in zip(rankings, golds, strict=True)),
        }
        if spans_by[method]:
            m["span_recall"] = {str(k): mean(row[i] for row in spans_by[method]) for i, k in enumerate(ks)}
        methods[method] = m
    n = len(task.questions) or 1
    result = {
        "kind": "retrieval",
        "index": info,
        "ks": list(ks),
        "methods": methods,
        "abstention_rate": abstain / n,
        "abstention_note": f"share of questions whose best dense score is below retrieval.min_score "
        f"({r.min_score}): the chain would answer 'insufficient evidence' without calling the model",
        "emergency_triggers": emergencies,
        "latency": latency_summary(timings),
    }
    if answers:
        chain_retriever = Retriever.from_settings(index, embedder, r, lexical)
        result["answers"] = answer_sample(
            task, settings, chain_retriever, engine, per_q[:answers], task.questions[:answers]
        )
    return result, per_q


def answer_sample(
    task: ds.RetrievalTask,
    settings: Settings,
    retriever: Retriever,
    engine: Engine | None,
    records: list[dict[str, Any]],
    questions: Sequence[ds.RetrievalQuestion],
) -> dict[str, Any]:
    """Answer questions through the whole chain; abstention, emergencies, citations, latency per step."""
    from chatbot.chain import Chain

    chain = Chain(settings, retriever=retriever, engine=engine)
    timings: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    bar = _bar(len(questions), f"{task.name} answers")
    for q, record in zip(questions, records, strict=True):
        answer = chain.answer(q.question)
        counts["answered"] += 1
        counts["abstained"] += answer.abstained
        counts["emergency"] += answer.emergency
        generated = not answer.abstained and not answer.emergency
        counts["generated"] += generated
        if generated:
            counts["invalid_citations"] += bool(answer.invalid_citations)
            counts["uncited"] += answer.uncited
            counts["attributed"] += bool(answer.attributed)
            counts["unsupported"] += bool(answer.unsupported)
            cited_gold = any(_gold_of(p.metadata, task.gold_key) in q.gold for p in answer.cited_passages)
            counts["cites_gold"] += cited_gold
            record["answer"] = {
                "cited": answer.cited,
                "invalid_citations": answer.invalid_citations,
                "cites_gold": cited_gold,
                "chars": len(answer.text),
            }
        for step, seconds in answer.timings.items():
            timings[step].append(seconds)
        bar.update(1)
    bar.close()
    n, g = counts["answered"] or 1, counts["generated"] or 1
    model = getattr(chain.engine, "name", "") if counts["generated"] else ""
    return {
        "questions": counts["answered"],
        "model": model,
        "abstention_rate": counts["abstained"] / n,
        "emergency_rate": counts["emergency"] / n,
        "of_generated": {
            "n": counts["generated"],
            "invalid_citation_rate": counts["invalid_citations"] / g,
            "uncited_rate": counts["uncited"] / g,
            "citation_added_rate": counts["attributed"] / g,
            "unsupported_sentence_rate": counts["unsupported"] / g,
            "cites_gold_rate": counts["cites_gold"] / g,
        },
        "latency": latency_summary(timings),
    }


def _template(name: str) -> str:
    return (TEMPLATES / f"{name}.md").read_text(encoding="utf-8").strip("\n")


def choice_messages(
    item: ds.ChoiceItem, kind: str, passages: Sequence[tuple[str, str]], heading: str
) -> list[Any]:
    """The system and user messages for one closed-answer question."""
    from chatbot.engines.base import ChatMessage
    from prompts import neutralise, render

    context = ""
    if passages:
        lines = []
        for n, (label, text) in enumerate(passages, start=1):
            body = " ".join(neutralise(text).split())
            lines.append(f"[{n}] {label + ': ' if label else ''}{body}")
        context = render(_template("context"), {"heading": heading, "passages": "\n".join(lines)}) + "\n\n"
    values = {"context": context, "question": neutralise(item.question.strip())}
    if kind == "multiple_choice":
        values["options"] = "\n".join(f"{k}. {v}" for k, v in sorted(item.options.items()))
    return [
        ChatMessage("system", _template(f"{kind}_system")),
        ChatMessage("user", render(_template(f"{kind}_user"), values, name=f"eval/{kind}_user")),
    ]


def run_choices(
    task: ds.ChoiceTask,
    settings: Settings,
    modes: Sequence[str],
    engine: Engine,
    retriever: Retriever | None,
    retriever_info: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Accuracy (and macro-F1) per mode: `given` (the item's own context), `retrieval`, `none`."""
    from chatbot.engines.base import GenerationParams, TokenCounter
    from chatbot.safety.emergency import EmergencyGate

    base = GenerationParams.from_settings(settings.generation)
    params = GenerationParams(
        max_new_tokens=settings.eval.answer_max_tokens,
        temperature=0.0,
        top_p=base.top_p,
        top_k=base.top_k,
        repeat_penalty=base.repeat_penalty,
        seed=base.seed,
    )
    gate = EmergencyGate(settings.safety)
    emergencies = sum(gate.check(i.question) is not None for i in task.items)
    per_q: dict[str, dict[str, Any]] = {
        i.qid: {"qid": i.qid, "group": i.group, "gold": i.answer} for i in task.items
    }
    modes_out: dict[str, Any] = {}
    interrupted, scored = False, 0
    for mode in modes:
        timings: dict[str, list[float]] = defaultdict(list)
        predicted: list[str | None] = []
        tokens: list[int] = []
        abstain = 0
        bar = _bar(len(task.items), f"{task.name} {mode}")
        try:
            for item in task.items:
                passages: list[tuple[str, str]] = []
                if mode == "given":
                    passages = item.context
                elif mode == "retrieval":
                    assert retriever is not None
                    t = time.perf_counter()
                    found = retriever.retrieve(item.question)
                    timings["retrieve_s"].append(time.perf_counter() - t)
                    best = max((p.score for p in found if p.dense_scored), default=0.0)
                    abstain += best < settings.retrieval.min_score
                    passages = [(p.title, p.text) for p in found]
                heading = "Study text" if mode == "given" else "Relevant documents"
                messages = choice_messages(item, task.kind, passages, heading)
                if isinstance(engine, TokenCounter):
                    tokens.append(engine.prompt_tokens(messages))
                t = time.perf_counter()
                reply = "".join(engine.stream(messages, params))
                timings["generate_s"].append(time.perf_counter() - t)
                if task.kind == "yes_no_maybe":
                    guess = parse_yes_no_maybe(reply)
                else:
                    guess = parse_choice(reply, item.options)
                predicted.append(guess)
                per_q[item.qid][mode] = {"reply": reply, "predicted": guess, "correct": guess == item.answer}
                bar.update(1)
        except KeyboardInterrupt:  # score what was answered; the report says it was cut short
            interrupted = True
        bar.close()
        done = task.items[: len(predicted)]
        scored = scored or len(done)
        gold = [i.answer for i in done]
        out: dict[str, Any] = {
            "scored": len(done),
            "accuracy": accuracy(gold, predicted),
            "macro_f1": macro_f1(gold, predicted, task.labels),
            "unparsed": sum(p is None for p in predicted),
            "predicted": dict(Counter(p or "unparsed" for p in predicted)),
            "latency": latency_summary(timings),
        }
        groups = sorted({i.group for i in done if i.group})
        if groups:
            out["by_group"] = {
                g: accuracy(
                    [i.answer for i in done if i.group == g],
                    [p for i, p in zip(done, predicted, strict=True) if i.group == g],
                )
                for g in groups
            }
        if tokens:
            out["prompt_tokens"] = {"mean": round(mean(tokens), 1), "max": max(tokens)}
        if mode == "retrieval":
            out["abstention_rate"] = abstain / (len(done) or 1)
        modes_out[mode] = out
        if interrupted:
            break
    gold = [i.answer for i in task.items[:scored]]
    result: dict[str, Any] = {
        "kind": "answers",
        "model": getattr(engine, "name", ""),
        "quantization": getattr(engine, "quantization", ""),
        "modes": modes_out,
        "gold_distribution": dict(Counter(gold)),
        "majority_baseline": majority_baseline(gold, task.labels),
        "emergency_triggers": emergencies,
        "answer_max_tokens": params.max_new_tokens,
        "interrupted": interrupted,
    }
    if task.kind == "multiple_choice":
        result["chance"] = mean(1 / len(i.options) for i in task.items[:scored])
    if retriever_info:
        result["retrieval_index"] = retriever_info
    return result, list(per_q.values())


def _fingerprint(files: Sequence[Path], ids: Sequence[str]) -> dict[str, Any]:
    return {
        "files": {str(p): ds.sha256_file(p) for p in files},
        "sampled_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "sampled": len(ids),
    }


def run_eval(
    opts: EvalOptions,
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    engine: Engine | None = None,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark `opts.dataset`, write the report under `opts.outdir`, return it."""
    from chatbot.eval.report import write_report

    if opts.dataset not in DATASETS:
        raise ds.EvalDataError(f"unknown dataset '{opts.dataset}': choose one of {', '.join(DATASETS)}")
    started = time.perf_counter()
    work = settings.eval_work_dir
    ks = sorted(set(opts.ks))
    report: dict[str, Any] = {
        "dataset": opts.dataset,
        "path": str(opts.path),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": list(argv) if argv else None,
        "options": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items() if k != "outdir"
        },
        "limit": opts.limit,
        "seed": opts.seed,
    }
    if opts.dataset in RETRIEVAL:
        if embedder is None:
            from ingestion.embedding import get_embedder

            embedder = get_embedder(settings)
        common: dict[str, Any] = {
            "limit": opts.limit,
            "seed": opts.seed,
            "corpus_limit": opts.corpus_limit,
            "work": work,
        }
        if opts.dataset == "medquad":
            task = ds.medquad(opts.path, **common)
        elif opts.dataset == "covidqa":
            task = ds.covidqa(opts.path, **common)
        elif opts.dataset == "pubmedqa-retrieval":
            task = ds.pubmedqa_retrieval(opts.path, **common)
        else:
            task = ds.generic(opts.path, questions=opts.questions, **common)
        result, records = run_retrieval(task, settings, ks, embedder, answers=opts.answers, engine=engine)
        report["sample"] = task.sample
        report["fingerprint"] = _fingerprint(task.data_files, [q.qid for q in task.questions])
    else:
        choice = (
            ds.pubmedqa_choices(opts.path, limit=opts.limit, seed=opts.seed)
            if opts.dataset == "pubmedqa"
            else ds.mirage(opts.path, limit=opts.limit, seed=opts.seed)
        )
        modes = opts.modes or (
            ["given", "retrieval"] if opts.dataset == "pubmedqa" else ["none", "retrieval"]
        )
        bad = [m for m in modes if m not in ("given", "retrieval", "none")]
        if bad or ("given" in modes and opts.dataset != "pubmedqa"):
            raise ds.EvalDataError(
                f"unknown mode {bad or ['given']}: modes are none, retrieval and (PubMedQA only) given"
            )
        retriever, info = None, None
        if "retrieval" in modes:
            retriever, info = _choice_retriever(opts, settings, embedder)
        if engine is None:
            from chatbot.engines import get_engine

            engine = get_engine(settings.generation, models_dir=settings.models_dir)
        result, records = run_choices(choice, settings, modes, engine, retriever, info)
        report["sample"] = choice.sample
        report["fingerprint"] = _fingerprint(choice.data_files, [i.qid for i in choice.items])
    report["result"] = result
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["settings"] = settings.model_dump(mode="json")
    write_report(report, records, opts.outdir)
    return report


def _choice_retriever(
    opts: EvalOptions, settings: Settings, embedder: Embedder | None
) -> tuple[Retriever, dict[str, Any]]:
    """What answer benchmarks retrieve from: `--corpus` if given; for PubMedQA its own
    abstracts (conclusions held back); for MIRAGE the user's configured index."""
    from chatbot.retrieval import Retriever, open_retriever
    from ingestion.embedding import get_embedder

    corpus = opts.corpus or (opts.path if opts.dataset == "pubmedqa" else None)
    embedder = embedder or get_embedder(settings)
    if corpus is None:
        return open_retriever(settings, embedder), {
            "index": "the configured index",
            "home": str(settings.home),
        }
    esettings, index, lexical, info = build_index(settings, [corpus], opts.dataset, embedder)
    r = esettings.retrieval
    retriever = Retriever.from_settings(index, embedder, r, lexical)
    return retriever, {**info, "corpus": str(corpus), "k": r.k, "hybrid": r.hybrid}
