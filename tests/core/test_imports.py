"""Importing the packages must stay cheap: no torch, Chroma, Gradio or llama.cpp."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "chromadb", "gradio", "llama_cpp", "sentence_transformers")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_packages_import_nothing_heavy():
    code = (
        "import chatbot, ingestion, prompts, chatbot.chain, chatbot.cli, chatbot.engines, ingestion.pipeline"
    )
    assert _loaded_after(code) == set()


def test_help_loads_nothing_heavy():
    code = (
        "from click.testing import CliRunner\nfrom chatbot.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0 and 'ingest' in r.output"
    )
    assert _loaded_after(code) == set()


def test_console_script_answers_help():
    exe = sys.executable.replace("python", "medchat").rsplit("/", 1)
    out = subprocess.run([f"{exe[0]}/medchat", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for command in ("ingest", "ask", "serve"):
        assert command in out.stdout


def test_no_bitsandbytes_kernel_warning_in_front_of_a_command(tmp_path):
    """`medchat prefs prepare` and friends load the embedder, which pulls in bitsandbytes through
    peft; its CPU "kernels" warning must not reach the terminal."""
    import subprocess
    import sys

    code = (
        "import chatbot, logging; import sentence_transformers; "
        "logging.getLogger('bitsandbytes.backends.cpu.ops').warning('Failed to load kernels x')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "kernels" not in out.stderr
