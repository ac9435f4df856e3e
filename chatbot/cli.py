"""The `medchat` command line. Heavy libraries load inside the commands, so `--help` is instant."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from chatbot import __version__

if TYPE_CHECKING:
    from chatbot.chain import Answer
    from chatbot.settings import Settings
    from ingestion.pipeline import IngestReport

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("medchat")


def _settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from chatbot.errors import ConfigError
    from chatbot.settings import Settings

    try:
        settings = Settings()
        for dotted, value in overrides.items():
            if value is not None:
                section, key = dotted.split(".")
                setattr(getattr(settings, section), key, value)
    except ValidationError as e:
        first = e.errors()[0]
        where = "MEDCHAT_" + "__".join(str(p).upper() for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from e
    return settings


def _setup_logging(settings: Settings, verbose: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    try:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(settings.log_dir / "medchat.log", encoding="utf-8")
    except OSError as e:
        log.warning("cannot write logs under %s: %s", settings.log_dir, e)
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def _user_errors(fn: F) -> F:
    """Turn medchat's own errors into one line on stderr and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from chatbot.errors import MedchatError

        try:
            return fn(*args, **kwargs)
        except MedchatError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medchat")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """medchat: medical questions answered from your own documents, with cited sources.

    Settings come from MEDCHAT_* environment variables (MEDCHAT_HOME is where
    everything is written); `medchat config` shows them.
    """
    ctx.obj = {"verbose": verbose}


def _print_report(report: IngestReport) -> None:
    click.echo(
        f"{report.files_seen} files seen: {report.count('ingested')} ingested, "
        f"{report.count('unchanged')} unchanged, {report.count('skipped')} skipped, "
        f"{report.count('failed')} failed; {report.chunks_added} chunks added, "
        f"{report.chunks_removed} removed, {report.total_chunks} in the index ({report.seconds:.1f} s)"
    )
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in report.stages.items() if v >= 0.05)
    if stages:
        click.echo(f"time per stage: {stages}")
    if report.recovered:
        click.echo("an interrupted earlier run was cleaned up first", err=True)
    for f in report.files:
        if f.status in ("skipped", "failed"):
            click.echo(f"  {f.status}: {f.reason}", err=True)
        elif f.status == "removed":
            click.echo(f"  removed: {f.path} ({f.chunks} chunks; the file is gone)", err=True)
        for w in f.warnings:
            click.echo(f"  warning: {w}", err=True)
    if report.gone:
        click.echo(
            f"{report.gone} indexed files no longer exist: run with --prune to remove their chunks", err=True
        )


def run_ingest(
    settings: Settings,
    paths: list[Path],
    *,
    rebuild: bool = False,
    quiet: bool = False,
    prune: bool | None = None,
) -> IngestReport:
    from ingestion.pipeline import ingest

    if quiet or not sys.stderr.isatty():
        return ingest(paths, settings=settings, rebuild=rebuild, prune=prune)
    from tqdm import tqdm

    with tqdm(total=0, desc="ingesting", unit="file", file=sys.stderr, dynamic_ncols=True) as bar:

        def progress(path: str, done: int, total: int, embedded: int) -> None:
            bar.total = total
            bar.n = done
            name = Path(path).name[-40:] if path else ""
            note = f"{embedded:,} chunks embedded" + (f", {name}" if name else "")
            bar.set_postfix_str(note, refresh=False)
            bar.refresh()

        return ingest(paths, settings=settings, rebuild=rebuild, prune=prune, progress=progress)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--sample", is_flag=True, help="Also ingest the bundled sample corpus.")
@click.option("--rebuild", is_flag=True, help="Drop the index and build it anew.")
@click.option("--prune", is_flag=True, default=None, help="Remove the chunks of indexed files that are gone.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
@_user_errors
def ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    sample: bool,
    rebuild: bool,
    prune: bool | None,
    as_json: bool,
) -> None:
    """Read files or folders (PDF, HTML, Markdown, text, JSONL, JSON, PubMed/MedQuAD XML) into the index.

    Unchanged files are skipped, changed ones replaced; an interrupted run resumes.
    """
    settings = _settings()
    _setup_logging(settings, ctx.obj["verbose"])
    targets = list(paths) + ([settings.sample_corpus] if sample else [])
    if not targets and not prune:
        raise click.UsageError("give at least one file or folder to ingest, or --sample")
    try:
        report = run_ingest(settings, targets, rebuild=rebuild, quiet=as_json, prune=prune or None)
    except KeyboardInterrupt:
        click.echo(
            "\ninterrupted: files finished so far are kept; run the same command again to resume", err=True
        )
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report)
    if report.count("failed") and not report.count("ingested") and not report.count("unchanged"):
        sys.exit(1)


def render_answer(answer: Answer, *, with_text: bool = True) -> str:
    lines = [answer.text, ""] if with_text else [""]
    if answer.invalid_citations:
        numbers = ", ".join(str(n) for n in answer.invalid_citations)
        lines.insert(1, f"(removed citations to sources that were not given: {numbers})")
    if answer.passages and not answer.abstained:
        lines.append("Sources:")
        for n, p in enumerate(answer.passages, start=1):
            mark = "*" if n in answer.cited else " "
            where = f" - {p.section}" if p.section else ""
            lines.append(f" {mark}[{n}] {p.title}{where} ({p.source_name}, score {p.score:.2f})")
        if answer.uncited:
            lines.append("Note: the answer cites none of these sources; check it against them.")
        lines.append("")
    lines.append(answer.disclaimer)
    return "\n".join(lines)


def _filters(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    """`--filter year>=2020 --filter source=notes.md` as retrieval metadata filters."""
    filters: dict[str, Any] = {}
    for pair in pairs:
        match = re.fullmatch(r"\s*(\w+)\s*(>=|<=|!=|=)\s*(.+?)\s*", pair)
        if not match:
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE, KEY>=VALUE, KEY<=VALUE or KEY!=VALUE")
        key, op, raw = match.groups()
        value: Any = int(raw) if raw.lstrip("-").isdigit() else raw
        ops = {">=": "$gte", "<=": "$lte", "!=": "$ne"}
        filters[key] = value if op == "=" else {**filters.get(key, {}), ops[op]: value}
    return filters or None


@main.command()
@click.argument("question", required=False, default="")
@click.option("-k", type=click.IntRange(1, 64), default=None, help="Passages to retrieve.")
@click.option("--preset", default=None, help="Prompt preset from prompts/presets.toml (e.g. colleague).")
@click.option(
    "--filter",
    "filter_pairs",
    multiple=True,
    help="Only passages whose metadata match, e.g. --filter year>=2020 --filter source=/data/notes.md.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer, sources and timings as JSON.")
@click.pass_context
@_user_errors
def ask(
    ctx: click.Context,
    question: str,
    k: int | None,
    preset: str | None,
    filter_pairs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Answer QUESTION from the index, citing the passages used."""
    from chatbot.errors import EmptyQuestionError

    if not question.strip():
        raise EmptyQuestionError('the question is empty: try `medchat ask "What is a normal HbA1c?"`')
    filters = _filters(filter_pairs)
    settings = _settings(**{"retrieval.k": k, "prompts.preset": preset})
    _setup_logging(settings, ctx.obj["verbose"])
    from chatbot.chain import Chain

    chain = Chain(settings)
    if as_json:
        answer = chain.answer(question, filters=filters)
        click.echo(json.dumps(answer.as_dict(), indent=2, ensure_ascii=False))
        return
    live = sys.stdout.isatty()
    stream = chain.stream(question, filters=filters)
    for piece in stream:
        if live:
            click.echo(piece, nl=False)
    assert stream.answer is not None
    click.echo(render_answer(stream.answer, with_text=not live))


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 7860).")
@click.option(
    "--sample-if-empty", is_flag=True, help="Ingest the bundled sample corpus when no index exists."
)
@click.option(
    "--users",
    "users_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Annotator accounts (YAML; default $MEDCHAT_HOME/users.yaml); logins required when it has users.",
)
@click.option("--no-login", is_flag=True, help="Serve without logins (judgments recorded as 'local').")
@click.pass_context
@_user_errors
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    sample_if_empty: bool,
    users_file: Path | None,
    no_login: bool,
) -> None:
    """Start the app (Chat, Compare, Results) in the browser."""
    settings = _settings(**{"ui.host": host, "ui.port": port})
    _setup_logging(settings, ctx.obj["verbose"])
    if sample_if_empty and not (settings.chroma_dir / "chroma.sqlite3").is_file():
        click.echo(f"no index at {settings.chroma_dir}: ingesting the sample corpus first", err=True)
        _print_report(run_ingest(settings, [settings.sample_corpus]))
    from chatbot.ui.serve import serve_app

    click.echo(f"medchat is running at http://{settings.ui.host}:{settings.ui.port}  (Ctrl-C stops it)")
    serve_app(settings, users_file=users_file, login=False if no_login else None)


@main.command(name="export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dpo", "reward", "kto", "battles", "jsonl"]),
    required=True,
    help="dpo/reward: TRL preference rows; kto: unpaired rows; battles: arena table; jsonl: raw judgments.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Default ./medchat-FORMAT.jsonl",
)
@_user_errors
def export_(fmt: str, output: Path | None) -> None:
    """Write the stored preference judgments in a training or analysis format.

    Judgments a format cannot use are listed with their reasons in OUTPUT's `.excluded.jsonl` twin.
    """
    from chatbot.export import export, write_export
    from chatbot.store.prefs import open_store

    settings = _settings()
    result = export(open_store(settings), fmt)
    path, excluded = write_export(result, output or Path(f"medchat-{fmt}.jsonl"))
    click.echo(f"{len(result.rows)} rows written to {path}")
    if result.excluded:
        click.echo(f"{len(result.excluded)} judgments excluded; reasons in {excluded}", err=True)


@main.group()
def prefs() -> None:
    """Administer preference labelling: the question queue and annotator accounts."""


@prefs.command(name="load-questions")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--overlap", type=click.IntRange(1, 20), default=None, help="Annotators per item (default from settings)."
)
@click.option("--batch", default=None, help="Batch name (default: the file name).")
@_user_errors
def prefs_load_questions(path: Path, overlap: int | None, batch: str | None) -> None:
    """Queue the questions in PATH (text: one a line; JSONL or YAML with `question`, optional `gold`)."""
    from chatbot.store.prefs import open_store, read_question_file

    settings = _settings()
    items = read_question_file(path)
    n = open_store(settings).add_queue_items(
        items, batch=batch or path.name, overlap=overlap or settings.prefs.overlap
    )
    gold = sum(1 for i in items if i.get("gold"))
    click.echo(f"queued {n} questions ({gold} gold) from {path}")


@prefs.command(name="add-user")
@click.argument("name")
@click.option("--role", default="annotator", help="Recorded with each judgment, e.g. clinician, nurse, lay.")
@click.option("--admin", is_flag=True, help="Mark the user as an admin.")
@click.password_option(help="Password (prompted when not given).")
@_user_errors
def prefs_add_user(name: str, role: str, admin: bool, password: str) -> None:
    """Add or replace annotator NAME in the users file (the password is stored hashed)."""
    from chatbot.ui.auth import add_user

    settings = _settings()
    add_user(settings.users_path, name, password, role=role, admin=admin)
    click.echo(f"user {name} ({role}) saved in {settings.users_path}")


@main.command()
@click.argument("questions", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="JSONL file of answers; a rerun skips the questions already in it.",
)
@click.option(
    "--question-field", default=None, help="Field or column with the question (default `question`)."
)
@click.option("--id-field", default=None, help="Field with a stable row id (default `id`).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Questions answered at once with an HTTP engine (local engines answer one at a time).",
)
@click.option("-k", type=click.IntRange(1, 64), default=None, help="Passages to retrieve.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
@_user_errors
def batch(
    ctx: click.Context,
    questions: Path,
    output: Path,
    question_field: str | None,
    id_field: str | None,
    concurrency: int | None,
    k: int | None,
    as_json: bool,
) -> None:
    """Answer every question in QUESTIONS (JSONL or CSV), one JSON line each in --output.

    Other input fields are carried through under `input`. Interrupted runs resume.
    """
    settings = _settings(
        **{
            "retrieval.k": k,
            "batch.question_field": question_field,
            "batch.id_field": id_field,
            "batch.concurrency": concurrency,
        }
    )
    _setup_logging(settings, ctx.obj["verbose"])
    from chatbot.batch import run_batch
    from chatbot.chain import Chain

    summary = run_batch(
        Chain(settings),
        questions,
        output,
        question_field=settings.batch.question_field,
        id_field=settings.batch.id_field,
        concurrency=settings.batch.concurrency,
        on_bad_row=lambda b: click.echo(f"{questions}:{b.line}: {b.reason}; skipped", err=True),
    )
    for line, error in summary.failed:
        click.echo(f"{questions}:{line}: failed: {error}", err=True)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        for text in summary.lines():
            click.echo(text)
    if summary.interrupted:
        sys.exit(130)
    if summary.failed and not summary.answered and not summary.already_done:
        sys.exit(1)


def _ks(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        ks = sorted({int(x) for x in value.replace(" ", "").split(",") if x})
    except ValueError as e:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of numbers, e.g. 1,5,10") from e
    if not ks or ks[0] < 1 or ks[-1] > 500:
        raise click.BadParameter("each k must be between 1 and 500")
    return ks


@main.command(name="eval")
@click.argument(
    "dataset",
    type=click.Choice(["medquad", "covidqa", "pubmedqa", "pubmedqa-retrieval", "mirage", "generic"]),
)
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option(
    "-o",
    "--outdir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for report.json, report.md, questions.jsonl and the plots.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Score a seeded sample of N questions.")
@click.option("--seed", type=int, default=None, help="Sampling seed (default from settings, 0).")
@click.option("-k", "ks", default=None, help="Cut-offs for recall@k/nDCG@k, e.g. 1,5,10,32.")
@click.option(
    "--corpus-limit",
    type=click.IntRange(1),
    default=None,
    help="Retrieval benchmarks: index a seeded sample of N documents (MedQuAD, PubMedQA).",
)
@click.option(
    "--questions",
    "questions_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="generic: the questions JSONL ({question, relevant_ids}).",
)
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["given", "retrieval", "none"]),
    help="Answer benchmarks: settings to score (repeatable); default given+retrieval for PubMedQA, "
    "none+retrieval for MIRAGE.",
)
@click.option(
    "--answers",
    type=click.IntRange(0),
    default=0,
    help="Retrieval benchmarks: also answer N sampled questions through the whole chain "
    "(abstention, citation validity, latency per step).",
)
@click.option(
    "--corpus",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Answer benchmarks: a corpus to ingest and retrieve from in the retrieval setting.",
)
@click.pass_context
@_user_errors
def eval_(
    ctx: click.Context,
    dataset: str,
    path: Path,
    outdir: Path,
    limit: int | None,
    seed: int | None,
    ks: str | None,
    corpus_limit: int | None,
    questions_file: Path | None,
    modes: tuple[str, ...],
    answers: int,
    corpus: Path | None,
) -> None:
    """Score DATASET at PATH: retrieval (medquad, covidqa, pubmedqa-retrieval, generic) or answers
    (pubmedqa, mirage); writes a JSON and Markdown report with plots to --outdir."""
    settings = _settings()
    _setup_logging(settings, ctx.obj["verbose"])
    from chatbot.eval.runner import EvalOptions, run_eval

    opts = EvalOptions(
        dataset=dataset,
        path=path,
        outdir=outdir,
        limit=limit,
        seed=settings.eval.seed if seed is None else seed,
        ks=_ks(ks) or list(settings.eval.ks),
        corpus_limit=corpus_limit,
        questions=questions_file,
        modes=list(modes) or None,
        answers=answers,
        corpus=corpus,
    )
    report = run_eval(opts, settings, argv=["medchat", *sys.argv[1:]])
    from chatbot.eval.report import summary_lines

    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"report: {outdir / 'report.md'}")


@main.command()
@_user_errors
def config() -> None:
    """Show the effective settings as JSON."""
    click.echo(_settings().model_dump_json(indent=2))


if __name__ == "__main__":
    main()
