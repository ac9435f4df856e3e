"""Real servers for tests, started on 127.0.0.1 and stopped afterwards: PostgreSQL and nginx.

Both refuse to run as root (PostgreSQL) or should not (nginx): when the tests run as root, the
servers run as `nobody` through `runuser`, in a folder of their own under the system temp folder
(pytest's are private to root). A test that cannot have one skips and says why.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

UNPRIVILEGED = "nobody"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen, log: Path, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace")[-2000:] if log.is_file() else "(no log)"
            pytest.fail(f"{what} exited ({proc.returncode}): {said}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def as_unprivileged() -> list[str]:
    """The command prefix that runs a server as an ordinary user: none unless we are root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        pytest.skip("the tests run as root and `runuser` is missing: cannot start a server as a user")
    return [runuser, "-u", UNPRIVILEGED, "--"]


@contextlib.contextmanager
def server_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder the server's user owns (removed afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(folder, user.pw_uid, user.pw_gid)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- PostgreSQL -----------------------------------------------------------------------------------


def postgres_bin() -> Path:
    """The folder holding `initdb` and `pg_ctl`, or a skip naming what is missing."""
    candidates = [shutil.which("initdb"), "/usr/local/bin/initdb"]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    for c in candidates:
        if c and Path(c).is_file() and (Path(c).parent / "pg_ctl").is_file():
            return Path(c).parent
    pytest.skip("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")


def require_psycopg() -> None:
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("the PostgreSQL driver is not installed: pip install -e '.[postgres]'")


INITDB_OPTIONS = ("--auth=trust", "-E", "UTF8", "--no-locale")


class Postgres:
    """A throwaway PostgreSQL cluster; `create_database()` gives a fresh database's SQLAlchemy URL."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.admin_url = f"postgresql://medchat@127.0.0.1:{port}/postgres"
        self._n = 0

    def create_database(self) -> str:
        import psycopg

        self._n += 1
        name = f"judgments_{self._n}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://medchat@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """initdb into a temporary folder, listen on 127.0.0.1 on a free port, stop and remove it after."""
    require_psycopg()
    bin_dir = postgres_bin()
    prefix = as_unprivileged()
    with server_folder("medchat-pg-") as folder:
        data, log, port = folder / "data", folder / "postgres.log", free_port()
        init = subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "medchat", *INITDB_OPTIONS],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert init.returncode == 0, f"initdb failed: {init.stderr[-2000:]}"
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=100"
        start = subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert start.returncode == 0, f"pg_ctl start failed: {start.stderr}\n{log.read_text()[-2000:]}"
        try:
            yield Postgres(port)
        finally:
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )


# -- nginx ----------------------------------------------------------------------------------------


def nginx_binary() -> Path:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return Path(found)


@contextlib.contextmanager
def nginx(conf: str, folder: Path, port: int) -> Iterator[Path]:
    """Run nginx in the foreground with `conf` (a whole nginx.conf keeping its pid, logs and temporary
    files in `folder`) until the block ends; yields its error log."""
    binary = nginx_binary()
    path, log = folder / "nginx.conf", folder / "error.log"
    path.write_text(conf)
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED)
        os.chown(path, user.pw_uid, user.pw_gid)
    # -e: Debian's nginx opens /var/log/nginx/error.log before it reads the configuration
    cmd = [*as_unprivileged(), str(binary), "-p", str(folder), "-e", str(log), "-c", str(path)]
    test = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=30)
    assert test.returncode == 0, f"nginx -t refused the rendered configuration: {test.stderr}"
    proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, log, "nginx")
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
