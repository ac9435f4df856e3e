"""The command line through click's runner, on a real index and the fake engine."""

import json

import pytest
from click.testing import CliRunner

from chatbot.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def test_ask_before_ingest_is_one_line_with_the_remedy(runner):
    result = runner.invoke(main, ["ask", "What is asthma?"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith("error: no index at") and "medchat ingest" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["ask"], ["ask", "  "]])
def test_empty_question_is_one_line_error(runner, args):
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert result.output.startswith("error: the question is empty")


def test_bad_setting_names_the_variable(runner, monkeypatch):
    monkeypatch.setenv("MEDCHAT_RETRIEVAL__K", "0")
    result = runner.invoke(main, ["ask", "x"])
    assert result.exit_code == 1
    assert "MEDCHAT_RETRIEVAL__K" in result.output


@pytest.mark.slow  # the real embedder, through the command line
def test_ingest_then_ask_json(runner, few_notes, monkeypatch):
    result = runner.invoke(main, ["ingest", "--json", str(few_notes)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files_ingested"] == 5 and summary["chunks_added"] == summary["total_chunks"] > 5

    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "fake")
    monkeypatch.delenv("MEDCHAT_GENERATION__GROUNDING")  # the shipped default: extractive
    result = runner.invoke(main, ["ask", "--json", "How is type 2 diabetes diagnosed?"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["grounding"] == "extractive" and data["model"] == "extractive"  # the sources' own words
    assert 1 in data["cited"]
    assert data["sources"][0]["path"].endswith("type-2-diabetes.md")
    assert data["sources"][0]["text"].find(data["answer"].splitlines()[1][2:].split(" [1]")[0]) >= 0
    claims = [s for s in data["sentences"] if s["claim"]]
    assert claims and {s["verdict"] for s in claims} == {"supported"}
    assert "not medical advice" in data["disclaimer"]
    assert data["timings"]["total_s"] > 0


@pytest.mark.slow  # the real embedder, through the command line
def test_ask_prints_answer_sources_and_disclaimer(runner, few_notes, monkeypatch):
    assert runner.invoke(main, ["ingest", str(few_notes)]).exit_code == 0
    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "fake")
    monkeypatch.delenv("MEDCHAT_GENERATION__GROUNDING")  # the shipped default: extractive
    out = runner.invoke(main, ["ask", "-k", "3", "What is the INR target on warfarin?"]).stdout
    lines = out.splitlines()
    assert lines[0].startswith("**") and "Warfarin" in lines[0]  # the title of the quoted source
    assert lines[1].startswith("- ") and lines[1].endswith("].")
    assert "Sources:" in lines
    assert any(line.startswith(" *[1] ") and "warfarin.md" in line for line in lines)
    assert sum(1 for line in lines if line.strip().startswith(("*[", "["))) == 3
    assert lines[-1].startswith("This is general information")


def test_ingest_without_paths_is_a_usage_error(runner):
    result = runner.invoke(main, ["ingest"])
    assert result.exit_code == 2 and "--sample" in result.output


def test_config_shows_effective_settings(runner, medchat_home):
    data = json.loads(runner.invoke(main, ["config"]).stdout)
    assert data["home"] == str(medchat_home)
    assert data["ui"]["host"] == "127.0.0.1"


@pytest.mark.slow  # the real embedder, through the command line
def test_ask_with_preset_and_metadata_filters(runner, few_notes, monkeypatch):
    assert runner.invoke(main, ["ingest", str(few_notes)]).exit_code == 0
    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "fake")
    asthma = str(few_notes.resolve() / "asthma.md")
    result = runner.invoke(
        main,
        ["ask", "--json", "--preset", "colleague", "--filter", f"source={asthma}", "How is asthma treated?"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["variant"]["preset"] == "colleague"
    assert data["sources"] and {s["path"] for s in data["sources"]} == {asthma}
    bad = runner.invoke(main, ["ask", "--filter", "year~2020", "x"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output


def test_an_emergency_message_is_flagged_in_json(runner, monkeypatch):
    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "fake")
    result = runner.invoke(main, ["ask", "--json", "my dad's face is drooping and he can't speak"])
    assert result.exit_code == 0  # no index needed: the gate answers first
    data = json.loads(result.stdout)
    assert data["emergency"] is True and data["abstained"] is False
    assert data["emergency_category"] == "stroke" and "Call 112 or 911" in data["answer"]


def test_prefs_add_user_reads_a_password_piped_on_stdin(medchat_home):
    """Issue 27 item 13: `echo secret | medchat prefs add-user NAME` said "Aborted!"."""
    from chatbot.ui.auth import Users

    result = CliRunner().invoke(main, ["prefs", "add-user", "bob", "--role", "nurse"], input="s3cret piped\n")
    assert result.exit_code == 0 and "Aborted" not in result.output, result.output
    assert Users.load(medchat_home / "users.yaml").check("bob", "s3cret piped")
    empty = CliRunner().invoke(main, ["prefs", "add-user", "eve"], input="")
    assert empty.exit_code == 1 and "password for 'eve' is empty" in empty.output


def test_export_offers_every_format_the_exporter_writes(runner):
    from chatbot.labelling.export import FORMATS

    result = runner.invoke(main, ["export", "--help"])
    for fmt in FORMATS:
        assert fmt in result.output, fmt


def test_a_failed_write_names_the_home_of_the_settings_file(tmp_path, monkeypatch):
    """Issue #32: the message for a failed write named MEDCHAT_HOME's folder (or ~/.medchat) even
    when medchat.toml set another home."""
    from chatbot.cli import _storage_message

    home = tmp_path / "toml-home"
    config = tmp_path / "medchat.toml"
    config.write_text(f'home = "{home.as_posix()}"\n', encoding="utf-8")
    monkeypatch.delenv("MEDCHAT_HOME")
    monkeypatch.setenv("MEDCHAT_CONFIG", str(config))
    message = _storage_message(PermissionError(13, "Permission denied"))
    assert message is not None and f"MEDCHAT_HOME ({home})" in message


@pytest.mark.parametrize("command", ["ask", "batch"])
def test_k_filters_and_preset_travel_with_the_request_not_in_the_settings(
    runner, monkeypatch, tmp_path, command
):
    """Issue #32: `ask -k` and `batch -k` wrote k into the settings (and `--preset` the preset)."""
    from chatbot.chain import Answer, Chain
    from chatbot.retrieval import RetrievalParams

    seen = []

    def answer(self, question, **request):
        seen.append((self, request.get("retrieval")))
        return Answer(question=question, text="An answer.", passages=[])

    monkeypatch.setattr(Chain, "answer", answer)
    monkeypatch.setattr(Chain, "retriever", None)  # batch opens the index first: none is needed here
    if command == "ask":
        argv = [
            "ask",
            "--json",
            "-k",
            "3",
            "--preset",
            "colleague",
            "--filter",
            "year>=2020",
            "What is HbA1c?",
        ]
        want = RetrievalParams(3, {"year": {"$gte": 2020}})
    else:
        questions = tmp_path / "q.jsonl"
        questions.write_text(json.dumps({"question": "What is HbA1c?"}) + "\n")
        argv = ["batch", str(questions), "-o", str(tmp_path / "out.jsonl"), "-k", "3"]
        want = RetrievalParams(3)
    result = runner.invoke(main, argv)
    assert result.exit_code == 0, result.output
    ((chain, retrieval),) = seen
    assert retrieval == want
    assert chain.settings.retrieval.k == 4 and chain.settings.prompts.preset == "patient"
    assert chain.variant.preset == ("colleague" if command == "ask" else "patient")
    assert chain.passages(retrieval) == 3 and chain.passages(RetrievalParams()) == 4
