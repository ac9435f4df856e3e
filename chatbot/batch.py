"""`medchat batch`: answer every question in a JSONL or CSV file, resumably.

Each answered question becomes one JSON line in the output file, written,
flushed and fsynced before the next is started, so an interrupted run loses at
most the question in flight. A rerun reads the output first and skips every
question already there: questions are keyed by an id field when the rows have
one, else by a hash of the question text. Rows without a usable question are
reported with their line number and skipped; the run goes on.

HTTP engines (`generation.engine == "openai"`) answer several questions at
once; local engines share this machine's cores, so they answer one at a time.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import MedchatError

if TYPE_CHECKING:
    from chatbot.chain import Answer, Chain
    from chatbot.retrieval import RetrievalParams

log = logging.getLogger(__name__)


class BatchInputError(MedchatError):
    """The questions file cannot be read at all."""


@dataclass(frozen=True)
class Row:
    """One question to answer and the input fields carried through to the output."""

    line: int
    key: str
    question: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


def question_key(question: str) -> str:
    """The key of a question without an id: a hash of its whitespace-normalised text."""
    return "q:" + hashlib.sha256(" ".join(question.split()).encode("utf-8")).hexdigest()[:16]


def _read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, record or an exception) for each data row of a JSONL or CSV file."""
    suffix = path.suffix.lower()
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as e:
        raise BatchInputError(f"cannot read the questions file {path}: {e.strerror or e}") from e
    with handle:
        if suffix == ".csv" or suffix == ".tsv":
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            if not reader.fieldnames:
                raise BatchInputError(f"{path}: the CSV file has no header row naming its columns")
            for record in reader:
                if None in record:  # more cells than header columns
                    yield reader.line_num, ValueError("more cells than the header has columns")
                    continue
                yield reader.line_num, record
            return
        if suffix not in (".jsonl", ".ndjson", ".json"):
            raise BatchInputError(
                f"{path}: questions must be JSON Lines (.jsonl) or CSV (.csv/.tsv), not '{suffix}'"
            )
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as e:
                    yield number, ValueError(f"bad JSON ({e.msg})")
        except UnicodeDecodeError as e:
            raise BatchInputError(f"{path}: not UTF-8 text ({e.reason}); save the file as UTF-8") from e


def read_questions(
    path: Path, question_field: str = "question", id_field: str = "id"
) -> tuple[list[Row], list[BadRow]]:
    """The usable rows of a questions file and the rows that were not usable, with the reason."""
    rows: list[Row] = []
    bad: list[BadRow] = []
    seen: dict[str, int] = {}
    for line, record in _read_records(path):
        if isinstance(record, Exception):
            bad.append(BadRow(line, str(record)))
            continue
        if not isinstance(record, dict):
            bad.append(BadRow(line, "not a JSON object"))
            continue
        question = record.get(question_field)
        if not isinstance(question, str) or not question.strip():
            bad.append(BadRow(line, f"no question in field '{question_field}'"))
            continue
        rid = record.get(id_field)
        key = f"id:{rid}" if isinstance(rid, (str, int)) and str(rid).strip() else question_key(question)
        if key in seen:
            bad.append(BadRow(line, f"repeats the question of line {seen[key]} ({key}); answered once"))
            continue
        seen[key] = line
        fields = {k: v for k, v in record.items() if k != question_field}
        rows.append(Row(line, key, question.strip(), fields))
    return rows, bad


def done_keys(path: Path) -> set[str]:
    """Keys already answered in an output file; a torn last line (a killed run) is cut off."""
    if not path.is_file():
        return set()
    keys: set[str] = set()
    good_end = 0
    with path.open("rb") as f:
        while True:
            line = f.readline()
            if not line:
                break
            try:
                record = json.loads(line)
            except ValueError:
                if line.endswith(b"\n"):  # a bad line in the middle: keep it, it is not ours to drop
                    good_end = f.tell()
                    continue
                break  # an unfinished last line
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                keys.add(record["key"])
            good_end = f.tell()
    if good_end < path.stat().st_size:
        log.warning("%s: dropping an unfinished last line left by an interrupted run", path)
        with path.open("r+b") as f:
            f.truncate(good_end)
    return keys


@dataclass
class BatchSummary:
    rows: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    already_done: int = 0
    answered: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    abstained: int = 0
    emergency: int = 0
    uncited: int = 0
    invalid_citations: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    concurrency: int = 1

    def as_dict(self) -> dict[str, Any]:
        from chatbot.eval.metrics import percentile

        data = asdict(self)
        data.pop("latencies")
        data["bad_rows"] = [{"line": b.line, "reason": b.reason} for b in self.bad_rows]
        data["failed"] = [{"line": n, "error": e} for n, e in self.failed]
        data["latency_p50_s"] = round(percentile(self.latencies, 50), 3)
        data["latency_p95_s"] = round(percentile(self.latencies, 95), 3)
        data["per_minute"] = round(60 * self.answered / self.seconds, 2) if self.seconds else 0.0
        return data

    def lines(self) -> list[str]:
        d = self.as_dict()
        out = [
            f"{self.rows} rows: {self.answered} answered now, {self.already_done} answered before, "
            f"{len(self.failed)} failed, {len(self.bad_rows)} bad rows skipped "
            f"({self.seconds:.1f} s, {d['per_minute']} answers a minute, concurrency {self.concurrency})",
            f"of those answered now: {self.abstained} abstained, {self.emergency} emergency, "
            f"{self.uncited} cite no source, {self.invalid_citations} had invalid citations removed; "
            f"latency p50 {d['latency_p50_s']} s, p95 {d['latency_p95_s']} s",
        ]
        if self.interrupted:
            out.append("interrupted: run the same command again to answer the rest")
        return out


class _Writer:
    """Appends one JSON line per answer, durable before the call returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def _record(row: Row, answer: Answer, seconds: float) -> dict[str, Any]:
    return {"key": row.key, "line": row.line, "input": row.fields, **answer.as_dict(), "seconds": seconds}


def run_batch(
    chain: Chain,
    questions: Path,
    output: Path,
    *,
    question_field: str = "question",
    id_field: str = "id",
    concurrency: int = 1,
    progress: bool | None = None,
    on_bad_row: Callable[[BadRow], None] | None = None,
    retrieval: RetrievalParams | None = None,
) -> BatchSummary:
    """Answer the questions not yet in `output`, appending each answer as it is done.

    `concurrency` above 1 is used only with an HTTP engine. `progress=None`
    shows the bar when stderr is a terminal. `retrieval` goes with every question (`-k`).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    rows, bad = read_questions(questions, question_field, id_field)
    summary = BatchSummary(rows=len(rows) + len(bad), bad_rows=bad)
    for b in bad:
        if on_bad_row:
            on_bad_row(b)
        log.warning("%s:%d: %s; skipped", questions, b.line, b.reason)
    if output.resolve() == questions.resolve():
        raise BatchInputError(f"the output {output} is the questions file: name another output file")
    done = done_keys(output)
    todo = [r for r in rows if r.key not in done]
    summary.already_done = len(rows) - len(todo)
    http = chain.settings.generation.engine == "openai"
    workers = max(1, concurrency) if http else 1
    if concurrency > 1 and not http:
        log.info("engine %s runs locally: answering one question at a time", chain.settings.generation.engine)
    summary.concurrency = workers
    writer = _Writer(output)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=len(todo), desc="answering", unit="q", file=sys.stderr, disable=not show, dynamic_ncols=True
    )

    def one(row: Row) -> tuple[Row, Answer | None, str, float]:
        t = time.perf_counter()
        try:
            answer = chain.answer(row.question, retrieval=retrieval)
        except MedchatError as e:
            return row, None, str(e), time.perf_counter() - t
        except Exception as e:  # one question's crash must not end a run of thousands; retried next run
            log.exception("question on line %d failed", row.line)
            return row, None, f"unexpected {type(e).__name__}: {e}", time.perf_counter() - t
        return row, answer, "", time.perf_counter() - t

    def settle(row: Row, answer: Answer | None, error: str, seconds: float) -> None:
        if answer is None:
            summary.failed.append((row.line, error))
            log.warning("%s:%d: %s", questions, row.line, error)
        else:
            writer.write(_record(row, answer, round(seconds, 4)))
            summary.answered += 1
            summary.abstained += answer.abstained
            summary.emergency += answer.emergency
            summary.uncited += answer.uncited
            summary.invalid_citations += bool(answer.invalid_citations)
            summary.latencies.append(seconds)
        bar.update(1)

    try:
        if workers == 1 or len(todo) < 2:
            for row in todo:
                settle(*one(row))
        else:
            # the first question alone: it opens the index and loads models once, not per thread
            settle(*one(todo[0]))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                queue = iter(todo[1:])
                running: set[Future[tuple[Row, Answer | None, str, float]]] = set()
                try:
                    for row in queue:
                        running.add(pool.submit(one, row))
                        if len(running) >= workers:
                            finished, running = wait(running, return_when=FIRST_COMPLETED)
                            for fut in finished:
                                settle(*fut.result())
                    for fut in running:
                        settle(*fut.result())
                except KeyboardInterrupt:
                    for fut in running:
                        fut.cancel()
                    raise
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        writer.close()
    summary.seconds = time.perf_counter() - started
    return summary
