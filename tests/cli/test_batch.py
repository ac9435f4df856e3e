"""`medchat batch`: input parsing, one durable line per answer, resume, concurrency, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatbot.batch import done_keys, question_key, read_questions, run_batch
from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine

QUESTIONS = [
    {"id": "q1", "question": "What blood pressure counts as hypertension?", "topic": "bp"},
    {"id": "q2", "question": "How is asthma treated?", "topic": "lungs"},
    {"id": "q3", "question": "What does warfarin interact with?", "topic": "drugs"},
]


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory, embedder):
    """One real index of a few sample notes, shared by this module's tests (ingesting takes seconds)."""
    import shutil

    from chatbot.retrieval import open_retriever
    from chatbot.settings import Settings
    from ingestion.pipeline import ingest
    from tests.conftest import CORPUS, FEW_NOTES

    root = tmp_path_factory.mktemp("batch-index")
    notes = root / "notes"
    notes.mkdir()
    for name in FEW_NOTES:
        shutil.copy(CORPUS / name, notes / name)
    settings = Settings(home=root / "home")
    ingest([notes], settings=settings, embedder=embedder)
    return open_retriever(settings, embedder)


def write_jsonl(path: Path, rows: list[object], extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_read_questions_reports_bad_rows_and_keys_rows(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [*QUESTIONS, {"question": "  "}, ["not", "an", "object"], {"question": "No id here?"}, QUESTIONS[0]],
        extra_lines=("{broken json",),
    )
    rows, bad = read_questions(path)
    assert [r.key for r in rows] == ["id:q1", "id:q2", "id:q3", question_key("No id here?")]
    assert rows[0].fields == {"id": "q1", "topic": "bp"}
    reasons = {b.line: b.reason for b in bad}
    assert set(reasons) == {4, 5, 7, 8}
    assert "no question" in reasons[4] and "not a JSON object" in reasons[5]
    assert "repeats" in reasons[7] and "bad JSON" in reasons[8]


def test_read_questions_csv_with_another_field(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        "qid,text,note\n1,What is HbA1c?,a\n2,,empty\n3,What is asthma?,b,extra\n", encoding="utf-8"
    )
    rows, bad = read_questions(path, question_field="text", id_field="qid")
    assert [(r.key, r.question, r.fields) for r in rows] == [
        ("id:1", "What is HbA1c?", {"qid": "1", "note": "a"})
    ]
    assert [b.line for b in bad] == [3, 4]


def test_question_key_ignores_spacing() -> None:
    assert question_key("What  is\tasthma?") == question_key(" What is asthma? ")
    assert question_key("What is asthma?") != question_key("What is asthma")


def test_batch_writes_full_records_and_resumes(settings, retriever, tmp_path: Path) -> None:
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS, extra_lines=('{"id": "bad"}',))
    out = tmp_path / "answers.jsonl"
    summary = run_batch(
        Chain(settings, retriever=retriever, engine=FakeEngine()), questions, out, progress=False
    )
    assert (summary.rows, summary.answered, len(summary.bad_rows), summary.already_done) == (4, 3, 1, 0)
    records = read_out(out)
    assert [r["key"] for r in records] == ["id:q1", "id:q2", "id:q3"]
    first = records[0]
    assert first["input"] == {"id": "q1", "topic": "bp"}
    assert first["question"] == QUESTIONS[0]["question"]
    assert first["answer"] and first["sources"] and first["model"] == "fake"
    assert first["variant"] and "retrieve_s" in first["timings"]
    assert first["cited"] == [1]  # the fake engine quotes and cites passage 1

    # rerun: nothing left to do; a new question is answered alone
    engine = FakeEngine()
    again = run_batch(Chain(settings, retriever=retriever, engine=engine), questions, out, progress=False)
    assert (again.answered, again.already_done) == (0, 3) and engine.calls == []
    write_jsonl(questions, [*QUESTIONS, {"id": "q4", "question": "What triggers a migraine?"}])
    more = run_batch(Chain(settings, retriever=retriever, engine=engine), questions, out, progress=False)
    assert (more.answered, more.already_done, len(engine.calls)) == (1, 3, 1)
    assert [r["key"] for r in read_out(out)][-1] == "id:q4"


class _Interrupting(FakeEngine):
    """Answers `n` questions, then behaves as if Ctrl-C was pressed."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def stream(self, messages, params):  # type: ignore[no-untyped-def]
        if len(self.calls) >= self.n:
            raise KeyboardInterrupt
        return super().stream(messages, params)


def test_interrupted_run_keeps_finished_answers_and_resumes(settings, retriever, tmp_path: Path) -> None:
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    out = tmp_path / "answers.jsonl"
    summary = run_batch(
        Chain(settings, retriever=retriever, engine=_Interrupting(1)), questions, out, progress=False
    )
    assert summary.interrupted and summary.answered == 1
    assert [r["key"] for r in read_out(out)] == ["id:q1"]
    # a kill mid-write leaves a torn last line: it is cut off and that question answered again
    with out.open("a", encoding="utf-8") as f:
        f.write('{"key": "id:q2", "answer": "half a li')
    assert done_keys(out) == {"id:q1"}
    assert out.read_text(encoding="utf-8").endswith("}\n")
    rest = run_batch(
        Chain(settings, retriever=retriever, engine=FakeEngine()), questions, out, progress=False
    )
    assert (rest.answered, rest.already_done, rest.interrupted) == (2, 1, False)
    assert sorted(r["key"] for r in read_out(out)) == ["id:q1", "id:q2", "id:q3"]


class _Flaky(FakeEngine):
    """Fails on questions that mention asthma."""

    def stream(self, messages, params):  # type: ignore[no-untyped-def]
        if "asthma" in messages[-1].content.split("Question:")[-1]:
            raise RuntimeError("engine crashed")
        return super().stream(messages, params)


def test_a_failing_question_is_reported_and_retried_next_run(settings, retriever, tmp_path: Path) -> None:
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    out = tmp_path / "answers.jsonl"
    summary = run_batch(Chain(settings, retriever=retriever, engine=_Flaky()), questions, out, progress=False)
    assert summary.answered == 2 and summary.failed == [(2, "unexpected RuntimeError: engine crashed")]
    assert "id:q2" not in done_keys(out)
    again = run_batch(
        Chain(settings, retriever=retriever, engine=FakeEngine()), questions, out, progress=False
    )
    assert (again.answered, again.already_done, again.failed) == (1, 2, [])


def test_http_engine_answers_concurrently(settings, retriever, tmp_path: Path) -> None:
    settings.generation.engine = "openai"  # the chain's engine is the fake; only the mode changes
    many = [{"id": f"n{i}", "question": f"Question {i}: how is asthma treated?"} for i in range(8)]
    questions = write_jsonl(tmp_path / "q.jsonl", many)
    out = tmp_path / "answers.jsonl"
    summary = run_batch(
        Chain(settings, retriever=retriever, engine=FakeEngine()),
        questions,
        out,
        concurrency=3,
        progress=False,
    )
    assert (summary.answered, summary.concurrency) == (8, 3)
    assert sorted(r["key"] for r in read_out(out)) == sorted(f"id:n{i}" for i in range(8))


def test_local_engine_stays_serial(settings, retriever, tmp_path: Path) -> None:
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS[:2])
    summary = run_batch(
        Chain(settings, retriever=retriever, engine=FakeEngine()),
        questions,
        tmp_path / "a.jsonl",
        concurrency=4,
        progress=False,
    )
    assert summary.concurrency == 1 and summary.answered == 2


def test_emergency_question_is_answered_without_the_model(settings, retriever, tmp_path: Path) -> None:
    questions = write_jsonl(
        tmp_path / "q.jsonl", [{"question": "My father has crushing chest pain and is sweating right now"}]
    )
    engine = FakeEngine()
    summary = run_batch(
        Chain(settings, retriever=retriever, engine=engine), questions, tmp_path / "a.jsonl", progress=False
    )
    assert summary.emergency == 1 and engine.calls == []


def test_cli_batch_csv(few_index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbot.cli import main

    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "fake")
    questions = tmp_path / "q.csv"
    questions.write_text("ref,text\nA,How is asthma treated?\nB,\n", encoding="utf-8")
    out = tmp_path / "a.jsonl"
    args = ["batch", str(questions), "-o", str(out), "--question-field", "text", "--id-field", "ref"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 answered now" in result.output and "1 bad rows skipped" in result.output
    assert "q.csv:3: no question in field 'text'" in result.output
    assert read_out(out)[0]["input"] == {"ref": "A"}
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert (summary["answered"], summary["already_done"]) == (0, 1)


def test_cli_batch_refuses_unknown_format(tmp_path: Path) -> None:
    from chatbot.cli import main

    questions = tmp_path / "q.txt"
    questions.write_text("What is asthma?\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["batch", str(questions), "-o", str(tmp_path / "a.jsonl")])
    assert result.exit_code == 1
    assert "JSON Lines (.jsonl) or CSV" in result.output
