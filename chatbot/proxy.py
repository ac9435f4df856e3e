"""An nginx configuration for several `medchat serve` replicas with sticky sessions.

`medchat proxy-config` renders `chatbot/nginx.conf.template` (shipped in the package): either a whole
`nginx.conf` for an nginx of its own (pid, logs and temporary files under `--state-dir`), or, with
`--conf-d`, the part that goes in `/etc/nginx/conf.d/` of the system's nginx. docs/deploy.md says how
to run it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from chatbot.errors import ConfigError

_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(?P<port>\d{1,5})$")

_MAIN_OPEN = """worker_processes auto;
pid {state}/nginx.pid;
error_log {state}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
access_log {state}/access.log;
client_body_temp_path {state}/client_body_temp;
proxy_temp_path {state}/proxy_temp;
fastcgi_temp_path {state}/fastcgi_temp;
uwsgi_temp_path {state}/uwsgi_temp;
scgi_temp_path {state}/scgi_temp;
"""


def address(value: str, option: str) -> str:
    """`HOST:PORT`, checked; the error names the option, the value and the form it takes."""
    m = _ADDRESS.match(value.strip())
    if not m or not 1 <= int(m.group("port")) <= 65535:
        raise ConfigError(f"{option} {value!r} is not HOST:PORT: write it like 127.0.0.1:7861")
    return value.strip()


def render_nginx(
    replicas: Sequence[str],
    *,
    listen: str = "127.0.0.1:8080",
    state_dir: Path | None = None,
    max_body: str = "64m",
) -> str:
    """The configuration text: a whole nginx.conf when `state_dir` is given, else the http-level part
    for conf.d. Raises `ConfigError` for an address that is not HOST:PORT or a replica named twice."""
    if not replicas:
        raise ConfigError("no replica to proxy to: name each `medchat serve` with --replica HOST:PORT")
    servers = [address(r, "--replica") for r in replicas]
    if len(set(servers)) != len(servers):
        raise ConfigError(f"--replica names the same server twice ({', '.join(servers)}): name each once")
    listen = address(listen, "--listen")
    if not re.fullmatch(r"\d+[kKmMgG]?", max_body):
        raise ConfigError(f"--max-body {max_body!r} is not an nginx size: write it like 64m")
    if state_dir is not None and re.search(r"[\s;{}'\"]", str(state_dir)):
        raise ConfigError(
            f"--state-dir {str(state_dir)!r} has a space, quote, brace or ';': choose a plain folder name"
        )
    pinned = []
    for i, server in enumerate(servers):
        backups = "".join(f"    server {other} backup;\n" for other in servers if other != server)
        pinned.append(f"upstream medchat_r{i} {{\n    server {server};\n{backups}}}\n")
    served = [f'    "~(^|, ){re.escape(server)}$" r{i};' for i, server in enumerate(servers)]
    values = {
        "count": str(len(servers)),
        "listen": listen,
        "max_body": max_body,
        "pool_servers": "\n".join(f"    server {s} max_fails=1 fail_timeout=10s;" for s in servers),
        "pinned_upstreams": "".join(pinned),
        "cookie_map": "\n".join(f"    r{i} medchat_r{i};" for i in range(len(servers))),
        "served_map": "\n".join(served),
        "main_open": _MAIN_OPEN.format(state=state_dir.resolve()) if state_dir else "",
        "main_close": "}" if state_dir else "",
    }
    text = (files("chatbot") / "nginx.conf.template").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.search(r"\{\{\w+\}\}", text)
    assert left is None, f"the template names {left.group(0) if left else ''}, which nothing fills"
    return text
