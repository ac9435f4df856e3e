"""llama.cpp's own server beside the app: several answers batched on one machine (#31).

The in-process llama.cpp engine writes one answer at a time (one context, not thread-safe). llama.cpp's
`llama-server` keeps N slots on one copy of the model and decodes them together (continuous
batching), which on a CPU costs little more per step than one stream. `medchat serve --model-server
N` starts it on 127.0.0.1 with the llamacpp engine's GGUF, answers through the `openai` engine, and
stops it on exit; `make llama-server` builds it from the llama.cpp source that llama-cpp-python
ships, with the same portable flags.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from chatbot.errors import ConfigError, DependencyMissingError, ServerError

if TYPE_CHECKING:
    from chatbot.settings import GenerationSettings

log = logging.getLogger(__name__)

BUILT = Path(__file__).resolve().parent.parent / ".llama-server" / "bin" / "llama-server"
"""Where `make llama-server` leaves the program, in a source checkout."""


def find_llama_server(configured: Path | None = None) -> Path:
    """The `llama-server` program: the configured one, else the one `make llama-server` built,
    else the first on PATH. Raises a one-line error saying how to get one."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(
                f"MEDCHAT_GENERATION__MODEL_SERVER_BIN={path} is not an executable file: build it with "
                "`make llama-server` or give the path of llama.cpp's llama-server"
            )
        return path
    if BUILT.is_file() and os.access(BUILT, os.X_OK):
        return BUILT
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    raise DependencyMissingError(
        "no llama-server program for --model-server: build it with `make llama-server` (from the "
        "llama.cpp source in llama-cpp-python), or set MEDCHAT_GENERATION__MODEL_SERVER_BIN"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Linux: the server gets SIGTERM when medchat dies, however it dies (even SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LlamaServer:
    """One `llama-server` process on 127.0.0.1: `start()`, `url`, `stop()` (or use `with`)."""

    def __init__(
        self,
        model: Path,
        *,
        slots: int,
        n_ctx: int = 4096,
        threads: int | None = None,
        program: Path | None = None,
        port: int | None = None,
        ready_timeout_s: float = 300.0,
    ) -> None:
        if slots < 1:
            raise ConfigError(f"--model-server {slots}: give the number of parallel slots, 1 or more")
        if not Path(model).is_file():
            raise ConfigError(f"no GGUF model at {model}: set MEDCHAT_GENERATION__MODEL_PATH")
        self.program = find_llama_server(program)
        self.model, self.slots, self.n_ctx = Path(model), slots, n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.port = port or _free_port()
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, for the `openai` engine."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        # every slot gets the context a single answer gets in process (-c is shared out among slots)
        return [
            str(self.program),
            "--model", str(self.model),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--parallel", str(self.slots),
            "--cont-batching",
            "--ctx-size", str(self.n_ctx * self.slots),
            "--threads", str(self.threads),
            "--threads-batch", str(self.threads),
        ]  # fmt: skip

    def start(self) -> LlamaServer:
        """Start it and wait until it has loaded the model (`GET /health` answers 200)."""
        import httpx

        fd, name = tempfile.mkstemp(prefix="medchat-llama-server-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        log.info("starting %s", " ".join(self.command()))
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                said = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                self.stop()
                raise ServerError(
                    f"llama-server exited ({code}) while loading {self.model.name}: "
                    f"{' | '.join(said)[-400:]}: see the full log at {self.log_path}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    log.info("llama-server: %d slots on %s (log: %s)", self.slots, self.url, self.log_path)
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ServerError(
            f"llama-server did not load {self.model.name} within {self.ready_timeout_s:.0f} s: "
            f"see {self.log_path}"
        )

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def for_settings(gen: GenerationSettings, slots: int) -> LlamaServer:
    """A server for the GGUF the `llamacpp` engine would load with these settings."""
    from chatbot.engines.llamacpp import gguf_for
    from chatbot.settings import _default_home

    model = gguf_for(gen.model_path, gen.requantize, gen.models_dir or _default_home() / "models")
    return LlamaServer(
        model, slots=slots, n_ctx=gen.n_ctx, threads=gen.n_threads, program=gen.model_server_bin
    )
