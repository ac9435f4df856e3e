"""`medchat serve --model-server 2`: llama.cpp's server started beside the app, answers through it,
and stopped with it (#31). Needs the program `make llama-server` builds; skips without it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatbot.errors import MedchatError
from chatbot.model_server import find_llama_server

REPO = Path(__file__).resolve().parents[2]


def _children_named(pid: int, name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(c) for c in out if name in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]


def test_serve_answers_through_llama_server_and_stops_it_on_sigterm(medchat_home):
    try:
        find_llama_server(None)
    except MedchatError as e:
        pytest.skip(str(e))
    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDCHAT_GENERATION__MAX_NEW_TOKENS": "16"}
    cmd = [sys.executable, "-m", "chatbot.cli", "serve", "--no-login", "--sample-if-empty"]
    cmd += ["--port", str(port), "--model-server", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = []
        deadline = time.monotonic() + 900
        assert proc.stdout is not None
        for line in proc.stdout:
            said.append(line)
            if "medchat is running" in line or time.monotonic() > deadline:
                break
        assert "medchat is running" in said[-1], "".join(said[-10:])
        servers = _children_named(proc.pid, "llama-server")
        assert len(servers) == 1, servers
        _, history, _, status = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            "What blood pressure counts as high?", [], api_name="/ask"
        )
        assert status.startswith("Answered in"), status
        assert history[-1]["role"] == "assistant" and history[-1]["content"], history
        proc.send_signal(signal.SIGTERM)  # to medchat only: it must stop the server it started
        proc.wait(60)
        time.sleep(0.5)
        cmdline = Path(f"/proc/{servers[0]}/cmdline")
        assert not cmdline.exists() or "llama-server" not in cmdline.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
