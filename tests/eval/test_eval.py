"""`medchat eval`: metrics, answer parsing, adapters, retrieval and accuracy runs, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatbot.engines.fake import FakeEngine
from chatbot.eval import datasets as ds
from chatbot.eval.metrics import (
    hit_at_k,
    macro_f1,
    majority_baseline,
    ndcg_at_k,
    parse_choice,
    parse_yes_no_maybe,
    percentile,
    recall_at_k,
    reciprocal_rank,
)
from chatbot.eval.runner import EvalOptions, run_eval
from tests.conftest import SHARED_DATASETS

# -- metrics ---------------------------------------------------------------------------------------


def test_ranking_metrics_count_each_gold_document_once() -> None:
    ranked = ["x", "a", "a", None, "b"]
    assert recall_at_k(ranked, {"a"}, 1) == 0.0
    assert recall_at_k(ranked, {"a"}, 2) == 1.0
    assert recall_at_k(ranked, {"a", "b"}, 3) == 0.5  # the second chunk of "a" adds nothing
    assert recall_at_k(ranked, {"a", "b"}, 5) == 1.0
    assert hit_at_k(ranked, {"a", "b"}, 2) == 1.0
    assert reciprocal_rank(ranked, {"a"}) == 0.5
    assert reciprocal_rank(ranked, {"z"}) == 0.0
    assert ndcg_at_k(["a"], {"a"}, 5) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "a"], {"a"}, 5) == pytest.approx(1 / 1.5849625, rel=1e-6)
    # two gold documents at ranks 1 and 5 against the ideal ranks 1 and 2
    assert ndcg_at_k(ranked, {"x", "b"}, 5) == pytest.approx((1 + 1 / 2.5849625) / (1 + 1 / 1.5849625), 1e-6)


def test_percentile_and_classification_metrics() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    gold = ["yes", "yes", "no", "maybe"]
    assert macro_f1(gold, gold, ds.YNM) == 1.0
    # predicting yes everywhere: F1(yes) = 2*2/(4+2) = 2/3, no and maybe 0
    assert macro_f1(gold, ["yes"] * 4, ds.YNM) == pytest.approx(2 / 9)
    assert macro_f1(gold, [None] * 4, ds.YNM) == 0.0
    base = majority_baseline(gold, ds.YNM)
    assert base["label"] == "yes" and base["accuracy"] == 0.5


@pytest.mark.parametrize(
    ("reply", "want"),
    [
        ("Yes.", "yes"),
        ("no, the study found no effect", "no"),
        ("Maybe: the evidence is mixed", "maybe"),
        ("Answer: no. Although yes in subgroups", "no"),
        ("The results are inconclusive.", "maybe"),
        ("Not in this cohort.", "no"),
        ("**YES**", "yes"),
        ("The drug lowered blood pressure.", None),
        ("", None),
    ],
)
def test_parse_yes_no_maybe(reply: str, want: str | None) -> None:
    assert parse_yes_no_maybe(reply) == want


OPTIONS = {"A": "Aspirin", "B": "Warfarin", "C": "Heparin", "D": "Low molecular weight heparin"}


@pytest.mark.parametrize(
    ("reply", "want"),
    [
        ("B", "B"),
        ("C.", "C"),
        ("(D) Low molecular weight heparin", "D"),
        ("**A**", "A"),
        ("The answer is (C).", "C"),
        ("answer: b", None),  # a lower-case letter is too ambiguous to read as an option
        ("I would choose option D because...", "D"),
        ("A patient on warfarin needs monitoring", "B"),  # an article, then the quoted option text
        ("Low molecular weight heparin is safest", "D"),  # the longest quoted option wins over C
        ("It depends on the patient.", None),
    ],
)
def test_parse_choice(reply: str, want: str | None) -> None:
    assert parse_choice(reply, OPTIONS) == want


def test_sampling_is_seeded_and_prefix_stable() -> None:
    ids = [f"id{i}" for i in range(50)]
    assert ds.sample(ids, 5, 1) == ds.sample(list(reversed(ids)), 5, 1)
    assert ds.sample(ids, 5, 1) != ds.sample(ids, 5, 2)
    assert ds.sample(ids, 10, 1)[:5] == ds.sample(ids, 5, 1)
    assert sorted(ds.sample(ids, None, 3)) == sorted(ids)


# -- retrieval runs on a generated collection -------------------------------------------------------

DOCS = {
    "asthma": "Asthma narrows the airways; inhaled corticosteroids calm the inflammation and reliever "
    "inhalers open the airways during an attack.",
    "bp": "Hypertension is blood pressure that stays at or above 130/80 mmHg; salt reduction, exercise "
    "and ACE inhibitors lower it.",
    "warfarin": "Warfarin thins the blood; vitamin K in leafy greens and many antibiotics change its "
    "effect, so the INR is checked often.",
    "migraine": "Migraine brings throbbing one-sided headaches with nausea and sensitivity to light; "
    "triptans stop an attack.",
    "diabetes": "Type 2 diabetes is diagnosed when HbA1c is 6.5 percent or higher; metformin is the "
    "usual first medicine.",
    "gout": "Gout is a painful swollen joint, often the big toe, caused by uric acid crystals.",
}
QUESTIONS = [
    ("What do inhaled corticosteroids do for asthma airways?", ["asthma"]),
    ("Which blood pressure counts as hypertension?", ["bp"]),
    ("What changes the effect of warfarin?", ["warfarin"]),
    ("What HbA1c level means type 2 diabetes?", ["diabetes"]),
    ("What causes the swollen big toe of gout?", ["gout"]),
    ("Which conditions are treated with triptans or metformin?", ["migraine", "diabetes"]),
]


@pytest.fixture
def generic_set(tmp_path: Path) -> Path:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": k, "text": v, "title": k}) + "\n" for k, v in DOCS.items())
    )
    (folder / "questions.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{n}", "question": q, "relevant_ids": r}) + "\n"
            for n, (q, r) in enumerate(QUESTIONS)
        )
    )
    return folder


def test_generic_retrieval_report(settings, embedder, generic_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    opts = EvalOptions("generic", generic_set, out, ks=[1, 2, 5])
    report = run_eval(opts, settings, embedder=embedder)
    r = report["result"]
    assert r["index"]["chunks"] == len(DOCS)
    for method in ("dense", "bm25", "hybrid"):
        m = r["methods"][method]
        assert m["recall"]["5"] == 1.0, (method, m)
        assert 0.5 <= m["mrr"] <= 1.0
    # the two-document question can find at most one gold id at k=1
    assert r["methods"]["dense"]["recall"]["1"] <= 1 - 0.5 / len(QUESTIONS)
    assert set(r["latency"]) == {"embed_query_s", "dense_search_s", "bm25_s", "hybrid_s"}
    assert r["emergency_triggers"] == 0 and r["abstention_rate"] == 0.0
    assert report["fingerprint"]["sampled"] == len(QUESTIONS)
    assert {p.name for p in out.iterdir()} == {
        "report.json",
        "report.md",
        "questions.jsonl",
        "recall_at_k.png",
    }
    assert (out / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "| hybrid |" in md and "![recall_at_k.png](recall_at_k.png)" in md
    records = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    assert len(records) == len(QUESTIONS) and all(rec["dense_rank"] for rec in records)

    # the same sample again: same fingerprint, the index is reused (nothing embedded)
    again = run_eval(
        EvalOptions("generic", generic_set, tmp_path / "out2", ks=[1, 2, 5]), settings, embedder=embedder
    )
    assert again["fingerprint"] == report["fingerprint"]
    assert again["result"]["index"]["chunks_embedded_now"] == 0
    assert again["result"]["methods"] == r["methods"]
    # a smaller sample, also answered through the whole chain (the fake engine quotes passage [1])
    engine = FakeEngine()
    limited = run_eval(
        EvalOptions("generic", generic_set, tmp_path / "out3", limit=3, seed=7, ks=[5], answers=2),
        settings,
        embedder=embedder,
        engine=engine,
    )
    assert limited["fingerprint"]["sampled"] == 3
    assert limited["fingerprint"]["sampled_ids_sha256"] != report["fingerprint"]["sampled_ids_sha256"]
    answers = limited["result"]["answers"]
    assert answers["questions"] == 2 and len(engine.calls) == 2 and answers["model"] == "fake"
    assert answers["abstention_rate"] == 0.0
    assert answers["of_generated"]["n"] == 2 and answers["of_generated"]["uncited_rate"] == 0.0
    assert answers["of_generated"]["invalid_citation_rate"] == 0.0
    assert "generate_s" in answers["latency"]
    assert "## Answers through the whole chain" in (tmp_path / "out3" / "report.md").read_text()


def test_generic_rejects_unknown_relevant_ids(settings, generic_set: Path, tmp_path: Path) -> None:
    (generic_set / "questions.jsonl").write_text(
        json.dumps({"question": "q?", "relevant_ids": ["nope"]}) + "\n"
    )
    with pytest.raises(ds.EvalDataError, match="not in the corpus"):
        ds.generic(generic_set, questions=None, limit=None, seed=0, corpus_limit=None, work=tmp_path)


# -- answer benchmarks with the fake engine -----------------------------------------------------------


def _pqal(path: Path) -> Path:
    items = {
        "101": ("Does salt raise blood pressure?", "yes", "Salt intake was linked to higher pressure."),
        "102": ("Does vitamin C cure colds?", "no", "Colds lasted as long with vitamin C."),
        "103": ("Do statins help everyone?", "maybe", "Benefits varied by baseline risk."),
        "104": ("Does exercise lower HbA1c?", "yes", "Training lowered HbA1c by 0.6 points."),
    }
    data = {
        pmid: {
            "QUESTION": q,
            "CONTEXTS": [f"We studied this question. {ctx}", "Two hundred adults took part."],
            "LABELS": ["RESULTS", "METHODS"],
            "final_decision": d,
            "LONG_ANSWER": "SECRET CONCLUSION",
            "YEAR": "2020",
        }
        for pmid, (q, d, ctx) in items.items()
    }
    path.write_text(json.dumps(data))
    return path


def test_pubmedqa_given_abstract_accuracy(settings, tmp_path: Path) -> None:
    data = _pqal(tmp_path / "pqal.json")
    # the seeded order decides which question comes first: reply by the question instead of by order
    gold = {"salt": "Yes, it does.", "vitamin C": "No.", "statins": "It is unclear.", "exercise": "no"}

    class ByQuestion(FakeEngine):
        def stream(self, messages, params):  # type: ignore[no-untyped-def]
            self.calls.append(list(messages))
            text = messages[-1].content
            yield next(reply for key, reply in gold.items() if key in text)

    engine = ByQuestion()
    report = run_eval(
        EvalOptions("pubmedqa", data, tmp_path / "out", modes=["given"]), settings, engine=engine
    )
    r = report["result"]
    assert r["modes"]["given"]["accuracy"] == 0.75  # the exercise question is answered wrongly
    assert r["modes"]["given"]["unparsed"] == 0
    assert r["majority_baseline"] == {"label": "yes", "accuracy": 0.5, "macro_f1": pytest.approx(2 / 9)}
    prompt = engine.calls[0][-1].content
    assert "Results: We studied this question." in prompt and "SECRET CONCLUSION" not in prompt
    assert (tmp_path / "out" / "accuracy.png").is_file()
    assert "always 'yes' (majority baseline) | 50.0%" in (tmp_path / "out" / "report.md").read_text()


def test_pubmedqa_retrieval_setting_uses_the_ingested_abstracts(settings, embedder, tmp_path: Path) -> None:
    data = _pqal(tmp_path / "pqal.json")
    engine = FakeEngine(["yes", "yes", "yes", "yes"])
    opts = EvalOptions("pubmedqa", data, tmp_path / "out", modes=["retrieval"])
    report = run_eval(opts, settings, engine=engine, embedder=embedder)
    r = report["result"]
    assert r["modes"]["retrieval"]["accuracy"] == 0.5
    assert r["retrieval_index"]["chunks"] >= 4
    assert all("Relevant documents" in call[-1].content for call in engine.calls)
    assert not any("SECRET CONCLUSION" in call[-1].content for call in engine.calls)


def test_mirage_without_retrieval(settings, tmp_path: Path) -> None:
    bench = {
        "medqa": {
            "1": {"question": "Which drug is a vitamin K antagonist?", "options": OPTIONS, "answer": "B"},
            "2": {"question": "Which drug is given as a daily injection?", "options": OPTIONS, "answer": "D"},
        },
        "mmlu": {"3": {"question": "Which one is an antiplatelet?", "options": OPTIONS, "answer": "A"}},
    }
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps(bench))
    engine = FakeEngine(["B", "The answer is (D).", "I am not sure."])
    report = run_eval(
        EvalOptions("mirage", path, tmp_path / "out", modes=["none"], seed=3), settings, engine=engine
    )
    r = report["result"]
    m = r["modes"]["none"]
    assert m["unparsed"] == 1 and sum(m["predicted"].values()) == 3
    assert r["chance"] == 0.25
    assert set(m["by_group"]) == {"medqa", "mmlu"}
    assert "Options:\nA. Aspirin\nB. Warfarin" in engine.calls[0][-1].content
    records = [json.loads(line) for line in (tmp_path / "out" / "questions.jsonl").read_text().splitlines()]
    assert sum(rec["none"]["correct"] for rec in records) == round(m["accuracy"] * 3)


def test_interrupted_answer_run_reports_what_was_scored(settings, tmp_path: Path) -> None:
    class StopsAfterTwo(FakeEngine):
        def stream(self, messages, params):  # type: ignore[no-untyped-def]
            if len(self.calls) == 2:
                raise KeyboardInterrupt
            return super().stream(messages, params)

    data = _pqal(tmp_path / "pqal.json")
    engine = StopsAfterTwo(["yes", "yes"])
    report = run_eval(
        EvalOptions("pubmedqa", data, tmp_path / "out", modes=["given", "none"]), settings, engine=engine
    )
    r = report["result"]
    assert r["interrupted"] and list(r["modes"]) == ["given"] and r["modes"]["given"]["scored"] == 2
    assert sum(r["gold_distribution"].values()) == 2
    assert "**Interrupted**" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow  # the real embedder, through the command line
def test_cli_eval_generic(generic_set: Path, tmp_path: Path) -> None:
    from chatbot.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["eval", "generic", str(generic_set), "-o", str(out), "-k", "1,5", "--limit", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "hybrid recall@5" in result.output and (out / "report.json").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["dataset"] == "generic" and report["options"]["ks"] == [1, 5]
    assert report["settings"]["retrieval"]["k"] == 4


def test_cli_eval_bad_input(tmp_path: Path) -> None:
    from chatbot.cli import main

    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(main, ["eval", "pubmedqa", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "not valid JSON" in result.output
    result = CliRunner().invoke(main, ["eval", "generic", str(bad), "-o", str(tmp_path / "o"), "-k", "1,x"])
    assert result.exit_code == 2 and "comma-separated" in result.output


# -- the real benchmark files (read from ../shared/datasets, never copied) ---------------------------

needs_data = pytest.mark.skipif(
    not SHARED_DATASETS.is_dir(), reason=f"shared datasets not found at {SHARED_DATASETS}"
)


@needs_data
def test_real_covidqa_spans_point_at_the_answer_text(tmp_path: Path) -> None:
    path = SHARED_DATASETS / "covidqa" / "covidqa.json"
    task = ds.covidqa(path, limit=40, seed=0, corpus_limit=None, work=tmp_path)
    assert task.sample["corpus_docs"] == 98 and len(task.questions) == 40
    raw = json.loads(path.read_text())
    contexts = {str(p["document_id"]): p["context"].strip() for a in raw["data"] for p in a["paragraphs"]}
    answers = {str(qa["id"]): qa["answers"] for a in raw["data"] for p in a["paragraphs"] for qa in p["qas"]}
    for q in task.questions:
        (did,) = q.gold
        for (span_doc, start, end), given in zip(q.spans, answers[q.qid], strict=True):
            assert span_doc == did
            # a few COVID-QA offsets are one character off: the text must lie at the span, give or take
            assert given["text"].strip()[:60] in contexts[did][max(0, start - 3) : end + 3]


@needs_data
def test_real_pubmedqa_and_mirage_adapters() -> None:
    task = ds.pubmedqa_choices(SHARED_DATASETS / "pubmedqa" / "pqal_dev.json", limit=None, seed=0)
    assert len(task.items) == 500
    assert {i.answer for i in task.items} == {"yes", "no", "maybe"}
    assert majority_baseline([i.answer for i in task.items], ds.YNM)["accuracy"] == pytest.approx(0.552)
    mirage = ds.mirage(SHARED_DATASETS / "mirage-dev", limit=None, seed=0)
    assert len(mirage.items) == 75 and mirage.sample["groups"] == ["medmcqa", "medqa", "mmlu"]
    assert all(i.answer in i.options for i in mirage.items)


@needs_data
def test_real_medquad_retrieval_small(settings, embedder, tmp_path: Path) -> None:
    opts = EvalOptions(
        "medquad", SHARED_DATASETS / "medquad", tmp_path / "out", limit=6, corpus_limit=12, ks=[1, 5]
    )
    report = run_eval(opts, settings, embedder=embedder)
    r = report["result"]
    assert report["sample"]["corpus_docs"] == 12 and report["sample"]["questions"] == 6
    # a question finds its own answer among 12 easily
    assert r["methods"]["hybrid"]["recall"]["5"] >= 0.8
    assert r["methods"]["dense"]["recall"]["5"] >= 0.8
