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


def _module_imports(package: str) -> dict[str, set[str]]:
    """Each module of `package` -> the modules of the same package it imports, at the top or inside
    a function (a lazy import closes a circle all the same); a package's own `__init__` is left out
    of its children's imports, as Python runs it first anyway."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / package
    files = {
        ".".join(f.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): f
        for f in root.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                wanted = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for target in wanted:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def test_no_import_circle_inside_the_app_package():
    """Issue #32: `labelling/store/prefs.py` reached up into `labelling/export.py`, and the triage
    trainers `train.py` and `tune.py` imported each other."""
    from graphlib import CycleError, TopologicalSorter

    graph = _module_imports("chatbot")
    assert {"chatbot.retrieval", "chatbot.engines"} <= graph["chatbot.chain"]  # it reads lazy imports too
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as e:
        raise AssertionError(f"an import circle: {' -> '.join(e.args[1])}") from None
