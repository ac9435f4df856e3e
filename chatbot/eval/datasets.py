"""Dataset adapters: each benchmark file read into a corpus to ingest and questions with gold answers.

Retrieval tasks name the chunk metadata key that holds the gold id
(`doc_id`: the MedQuAD `uid`, the PubMed id, the COVID-QA `document_id`, or
the generic corpus's own `id`), so a retrieved chunk maps back to its
document. Sampling is seeded; the sampled ids go into the run's fingerprint.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import MedchatError
from ingestion.documents import file_sha256
from ingestion.loaders.jsondata import as_list


class EvalDataError(MedchatError):
    """A benchmark file is missing or not in the expected shape."""


@dataclass
class RetrievalQuestion:
    qid: str
    question: str
    gold: set[str]
    spans: list[tuple[str, int, int]] = field(default_factory=list)
    """(document id, start, end) of the gold answer text, where the benchmark marks one."""


@dataclass
class RetrievalTask:
    name: str
    corpus: list[Path]
    """Files to ingest (the benchmark file itself, or a sampled corpus written for the run)."""
    questions: list[RetrievalQuestion]
    data_files: list[Path]
    sample: dict[str, Any]
    gold_key: str = "doc_id"


@dataclass
class ChoiceItem:
    """One question with a closed set of answers (yes/no/maybe, or option letters)."""

    qid: str
    question: str
    options: dict[str, str]
    answer: str
    context: list[tuple[str, str]] = field(default_factory=list)
    """Given evidence as (section label, text), e.g. a PubMedQA abstract without its conclusion."""
    group: str = ""


@dataclass
class ChoiceTask:
    name: str
    items: list[ChoiceItem]
    labels: list[str]
    data_files: list[Path]
    sample: dict[str, Any]
    kind: str  # "yes_no_maybe" | "multiple_choice"


sha256_file = file_sha256


def sample(ids: Sequence[str], limit: int | None, seed: int) -> list[str]:
    """`limit` ids drawn with `seed` (all of them, shuffled the same way, without a limit)."""
    ordered = sorted(ids)
    random.Random(seed).shuffle(ordered)
    return ordered[:limit] if limit else ordered


def _json(path: Path) -> Any:
    if not path.is_file():
        raise EvalDataError(f"{path} does not exist: give the benchmark file (see `medchat eval --help`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EvalDataError(f"{path}: not valid JSON ({e})") from e


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise EvalDataError(f"{path} does not exist")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise EvalDataError(f"{path}:{number}: bad JSON ({e})") from e
        if not isinstance(record, dict):
            raise EvalDataError(f"{path}:{number}: not a JSON object")
        records.append(record)
    return records


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write only when the content changed, so that ingestion sees an unchanged file on a rerun."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def medquad(
    path: Path, *, limit: int | None, seed: int, corpus_limit: int | None, work: Path
) -> RetrievalTask:
    """MedQuAD: each question's gold passage is its own answer (keyed by `uid`).

    `path` is the `medquad` folder or its `medquad_answered.jsonl`. With
    `corpus_limit` the corpus is a seeded sample of that many answers; the
    questions are sampled from the pairs whose answer is in the corpus.
    """
    file = path / "medquad_answered.jsonl" if path.is_dir() else path
    pairs = {str(r["uid"]): r for r in _jsonl(file) if r.get("uid") and r.get("answer") and r.get("question")}
    if not pairs:
        raise EvalDataError(f"{file}: no MedQuAD pairs with uid, question and answer")
    corpus_ids = sample(list(pairs), corpus_limit, seed)
    question_ids = sample(corpus_ids, limit, seed + 1)
    name = f"medquad-{len(corpus_ids)}-s{seed}.jsonl"
    corpus_file = work / "corpora" / name
    _write_jsonl(
        corpus_file,
        [
            {"id": uid, "text": pairs[uid]["answer"], "title": pairs[uid].get("focus") or ""}
            for uid in sorted(corpus_ids)
        ],
    )
    questions = [RetrievalQuestion(uid, str(pairs[uid]["question"]), {uid}) for uid in question_ids]
    return RetrievalTask(
        "medquad",
        [corpus_file],
        questions,
        [file],
        {"corpus_docs": len(corpus_ids), "corpus_total": len(pairs), "questions": len(questions)},
    )


def _pubmedqa_data(path: Path) -> dict[str, dict[str, Any]]:
    data = _json(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "QUESTION" in v for v in data.values()):
        raise EvalDataError(f"{path}: not a PubMedQA file ({{pmid: {{QUESTION, CONTEXTS, ...}}}} expected)")
    return data


def pubmedqa_retrieval(
    path: Path, *, limit: int | None, seed: int, corpus_limit: int | None, work: Path
) -> RetrievalTask:
    """PubMedQA: each question's gold passage is its own abstract (keyed by PubMed id)."""
    data = _pubmedqa_data(path)
    corpus_ids = sample(list(data), corpus_limit, seed)
    corpus = path
    if corpus_limit and corpus_limit < len(data):
        corpus = work / "corpora" / f"pubmedqa-{len(corpus_ids)}-s{seed}.json"
        subset = {pmid: data[pmid] for pmid in sorted(corpus_ids)}
        text = json.dumps(subset, ensure_ascii=False, sort_keys=True)
        if not corpus.is_file() or corpus.read_text(encoding="utf-8") != text:
            corpus.parent.mkdir(parents=True, exist_ok=True)
            corpus.write_text(text, encoding="utf-8")
    questions = [
        RetrievalQuestion(pmid, str(data[pmid]["QUESTION"]), {pmid})
        for pmid in sample(corpus_ids, limit, seed + 1)
    ]
    return RetrievalTask(
        "pubmedqa-retrieval",
        [corpus],
        questions,
        [path],
        {"corpus_docs": len(corpus_ids), "corpus_total": len(data), "questions": len(questions)},
    )


def covidqa(
    path: Path, *, limit: int | None, seed: int, corpus_limit: int | None, work: Path
) -> RetrievalTask:
    """COVID-QA: each question's gold is its article (`document_id`) and the answer's character span.

    The corpus is the whole file (98 articles), or with `corpus_limit` a seeded
    sample of that many articles, written for the run; questions come from those.
    """
    data = _json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise EvalDataError(f"{path}: not a SQuAD-style file ({{data: [{{paragraphs: ...}}]}} expected)")
    every = [str(p.get("document_id")) for a in data["data"] for p in a.get("paragraphs", [])]
    keep = set(sample(every, corpus_limit, seed))
    corpus = path
    if corpus_limit and corpus_limit < len(every):
        subset = {
            "data": [
                {**a, "paragraphs": [p for p in a.get("paragraphs", []) if str(p.get("document_id")) in keep]}
                for a in data["data"]
            ]
        }
        subset["data"] = [a for a in subset["data"] if a["paragraphs"]]
        corpus = work / "corpora" / f"covidqa-{len(keep)}-s{seed}.json"
        text = json.dumps(subset, ensure_ascii=False, sort_keys=True)
        if not corpus.is_file() or corpus.read_text(encoding="utf-8") != text:
            corpus.parent.mkdir(parents=True, exist_ok=True)
            corpus.write_text(text, encoding="utf-8")
    by_id: dict[str, RetrievalQuestion] = {}
    docs = 0
    for article in data["data"]:
        for para in article.get("paragraphs", []):
            context = para.get("context") or ""
            did = str(para.get("document_id"))
            if did not in keep:
                continue
            docs += 1
            lead = len(context) - len(context.lstrip())  # the loader strips the text it indexes
            for qa in para.get("qas", []):
                question = str(qa.get("question") or "").strip()
                if not question or qa.get("is_impossible"):
                    continue
                spans = [
                    (did, int(a["answer_start"]) - lead, int(a["answer_start"]) - lead + len(a["text"]))
                    for a in qa.get("answers", [])
                    if isinstance(a.get("answer_start"), int) and a.get("text")
                ]
                qid = str(qa.get("id"))
                by_id[qid] = RetrievalQuestion(qid, question, {did}, spans)
    chosen = sample(list(by_id), limit, seed + 1)
    return RetrievalTask(
        "covidqa",
        [corpus],
        [by_id[q] for q in chosen],
        [path],
        {"corpus_docs": docs, "questions": len(chosen), "questions_total": len(by_id)},
    )


def generic(
    path: Path, *, questions: Path | None, limit: int | None, seed: int, corpus_limit: int | None, work: Path
) -> RetrievalTask:
    """Any collection: a corpus JSONL of `{id, text, title?}` and a questions JSONL of
    `{question, relevant_ids: [...], id?}`. `path` is the corpus file, or a folder
    holding `corpus.jsonl` and `questions.jsonl`."""
    corpus = path / "corpus.jsonl" if path.is_dir() else path
    qfile = questions or (path / "questions.jsonl" if path.is_dir() else None)
    if qfile is None:
        raise EvalDataError("the generic adapter needs a questions file: give --questions FILE")
    ids = {str(r.get("id")) for r in _jsonl(corpus) if r.get("id") not in (None, "")}
    if not ids:
        raise EvalDataError(f"{corpus}: no record has an `id`; the generic corpus needs {{id, text}} records")
    by_id: dict[str, RetrievalQuestion] = {}
    for n, r in enumerate(_jsonl(qfile), start=1):
        rel = r.get("relevant_ids")
        if not isinstance(r.get("question"), str) or not isinstance(rel, list) or not rel:
            raise EvalDataError(f"{qfile}:{n}: needs `question` and a non-empty list `relevant_ids`")
        unknown = {str(x) for x in rel} - ids
        if unknown:
            raise EvalDataError(f"{qfile}:{n}: relevant ids not in the corpus: {sorted(unknown)[:5]}")
        qid = str(r.get("id") or n)
        by_id[qid] = RetrievalQuestion(qid, r["question"], {str(x) for x in rel})
    chosen = sample(list(by_id), limit, seed)
    return RetrievalTask(
        "generic",
        [corpus],
        [by_id[q] for q in chosen],
        [corpus, qfile],
        {"corpus_docs": len(ids), "questions": len(chosen), "questions_total": len(by_id)},
    )


YNM = ["yes", "no", "maybe"]


def pubmedqa_choices(path: Path, *, limit: int | None, seed: int) -> ChoiceTask:
    """PubMedQA PQA-L: the yes/no/maybe decision, with the abstract minus its conclusion as context."""
    data = _pubmedqa_data(path)
    items = []
    for pmid in sample(list(data), limit, seed):
        item = data[pmid]
        decision = str(item.get("final_decision", "")).lower()
        if decision not in YNM:
            raise EvalDataError(f"{path}: {pmid} has final_decision {decision!r}, not yes/no/maybe")
        contexts = [str(c) for c in as_list(item.get("CONTEXTS"))]
        labels = [str(x).title() if str(x).isupper() else str(x) for x in as_list(item.get("LABELS"))]
        labels += [""] * (len(contexts) - len(labels))
        items.append(
            ChoiceItem(
                pmid,
                str(item["QUESTION"]),
                {x: x for x in YNM},
                decision,
                list(zip(labels, contexts, strict=False)),
            )
        )
    return ChoiceTask(
        "pubmedqa", items, YNM, [path], {"questions": len(items), "total": len(data)}, "yes_no_maybe"
    )


def mirage(path: Path, *, limit: int | None, seed: int) -> ChoiceTask:
    """MIRAGE format `{dataset: {qid: {question, options: {A: ..}, answer}}}` (or its folder)."""
    file = path / "benchmark_dev.json" if path.is_dir() and (path / "benchmark_dev.json").is_file() else path
    if file.is_dir():
        file = file / "benchmark.json"
    data = _json(file)
    if not isinstance(data, dict):
        raise EvalDataError(
            f"{file}: not MIRAGE format ({{dataset: {{qid: {{question, options, answer}}}}}})"
        )
    every: dict[str, ChoiceItem] = {}
    for group, questions in data.items():
        if not isinstance(questions, dict):
            raise EvalDataError(f"{file}: '{group}' is not a mapping of question ids to questions")
        for qid, q in questions.items():
            options = q.get("options") if isinstance(q, dict) else None
            if not isinstance(options, dict) or not q.get("question") or q.get("answer") not in options:
                raise EvalDataError(f"{file}: {group}/{qid} lacks question, options or an answer among them")
            key = f"{group}/{qid}"
            every[key] = ChoiceItem(
                key,
                str(q["question"]),
                {str(k): str(v) for k, v in options.items()},
                str(q["answer"]),
                [],
                group,
            )
    chosen = sample(list(every), limit, seed)
    labels = sorted({k for i in every.values() for k in i.options})
    groups = sorted({every[k].group for k in chosen})
    return ChoiceTask(
        "mirage",
        [every[k] for k in chosen],
        labels,
        [file],
        {"questions": len(chosen), "total": len(every), "groups": groups},
        "multiple_choice",
    )
