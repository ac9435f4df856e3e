"""The package as users get it: a wheel installed away from the repository must carry everything.

`data/` ships inside the wheel as `chatbot.bundled`; a path computed from the repository would
find nothing in an installed copy, so the wheel test fails if any code still reads the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO

SOURCES = ("chatbot", "ingestion", "prompts", "data", "pyproject.toml", "README.md")


def test_pyproject_lists_every_package_in_the_tree():
    """Packages are listed by hand (for the `data` mapping), so a new one must be added there."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("chatbot", "ingestion", "prompts")
        for init in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert listed == found | {"chatbot.bundled"}
    assert config["package-dir"] == {"chatbot.bundled": "data"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{cmd[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; the dependencies come from this venv through a .pth
    file (which, unlike this venv's own site directory, does not bring the editable install)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:  # a clean copy: building in the checkout would leave build/ behind
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(src)], cwd=tmp)  # fmt: skip
    (wheel,) = wheels.glob("medchat-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib]).stdout.strip())
    (site / "medchat-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp)  # fmt: skip
    shutil.rmtree(src)  # nothing may be read from the copy either
    return venv


@pytest.mark.slow
@pytest.mark.e2e
def test_a_wheel_installed_elsewhere_ingests_the_sample_and_serves(installed: Path, tmp_path: Path):
    work = tmp_path / "cwd"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDCHAT_", "PYTHON"))}
    env["MEDCHAT_HOME"] = str(tmp_path / "home")
    python, medchat = installed / "bin" / "python", installed / "bin" / "medchat"

    where = _run([str(python), "-c", "import chatbot, json; from chatbot.settings import Settings; "
                  "s = Settings(); print(json.dumps([chatbot.__file__, str(s.sample_corpus), "
                  "str(s.prefs.variants_file)]))"], cwd=work, env=env)  # fmt: skip
    for path in json.loads(where.stdout):
        assert Path(path).is_relative_to(installed), path  # the installed copy, not the repository
        assert not Path(path).is_relative_to(REPO), path

    ingested = _run([str(medchat), "ingest", "--sample", "--json"], cwd=work, env=env, timeout=600)
    summary = json.loads(ingested.stdout)
    assert summary["files_ingested"] >= 50 and summary["files_failed"] == 0

    port = _free_port()
    server = subprocess.Popen(
        [str(medchat), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-login"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        page = ""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    assert response.status == 200
                    page = response.read().decode("utf-8", "replace")
                    break
            except OSError:
                time.sleep(0.5)
        assert server.poll() is None, server.communicate()[0][-3000:]
        assert "medchat" in page
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_the_installed_wheel_renders_the_nginx_configuration(installed: Path, tmp_path: Path):
    """`chatbot/nginx.conf.template` is package data: `medchat proxy-config` finds it in a wheel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDCHAT_", "PYTHON"))}
    medchat = str(installed / "bin" / "medchat")
    done = _run([medchat, "proxy-config", "--replica", "127.0.0.1:7861", "--conf-d"], cwd=tmp_path, env=env)
    assert "upstream medchat_r0 {\n    server 127.0.0.1:7861;\n}" in done.stdout
