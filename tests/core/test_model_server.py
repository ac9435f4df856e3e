"""`medchat serve --model-server`: the errors a person can meet before llama-server starts (#31)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from chatbot.errors import ConfigError, DependencyMissingError, ServerError
from chatbot.model_server import LlamaServer, find_llama_server
from chatbot.settings import Settings


def test_a_configured_program_that_is_not_there_is_named_with_the_remedy(tmp_path):
    with pytest.raises(ConfigError, match=r"MODEL_SERVER_BIN=.*nope.*make llama-server"):
        find_llama_server(tmp_path / "nope")


def test_no_program_anywhere_says_how_to_build_one(monkeypatch, tmp_path):
    monkeypatch.setattr("chatbot.model_server.BUILT", tmp_path / "missing")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyMissingError, match="make llama-server"):
        find_llama_server(None)


def _fake_program(tmp_path: Path, body: str) -> Path:
    program = tmp_path / "llama-server"
    program.write_text(f"#!{sys.executable}\n{body}\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    return program


def test_a_server_that_exits_while_loading_is_reported_with_its_last_words(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    program = _fake_program(tmp_path, "import sys; print('error: failed to load model'); sys.exit(3)")
    server = LlamaServer(model, slots=2, program=program, ready_timeout_s=30)
    with pytest.raises(ServerError, match=r"llama-server exited \(3\).*failed to load model"):
        server.start()
    assert server.proc is None


def test_the_command_gives_each_slot_the_whole_context_and_batches_continuously(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    server = LlamaServer(model, slots=4, n_ctx=2048, threads=2, program=_fake_program(tmp_path, ""))
    cmd = server.command()
    assert cmd[cmd.index("--parallel") + 1] == "4" and "--cont-batching" in cmd
    assert cmd[cmd.index("--ctx-size") + 1] == str(4 * 2048)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"


def test_a_missing_model_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"no GGUF model at .*MODEL_PATH"):
        LlamaServer(tmp_path / "none.gguf", slots=2, program=_fake_program(tmp_path, ""))


def test_served_engines_generate_many_answers_at_once_and_local_ones_few(monkeypatch):
    assert Settings().generation.generations_at_once == 4  # llamacpp: one context, one at a time
    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "openai")
    assert Settings().generation.generations_at_once == 256
    monkeypatch.setenv("MEDCHAT_GENERATION__PARALLEL", "12")
    assert Settings().generation.generations_at_once == 12


def test_serve_refuses_a_model_server_that_is_neither_a_count_nor_a_url():
    from click.testing import CliRunner

    from chatbot.cli import main

    result = CliRunner().invoke(main, ["serve", "--model-server", "lots"])
    assert result.exit_code != 0
    assert "--model-server" in result.output and "number of parallel slots" in result.output
