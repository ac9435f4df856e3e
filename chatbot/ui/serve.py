"""Launch the app (used by `medchat serve`): logins from the users file, 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import ConfigError

if TYPE_CHECKING:
    from chatbot.settings import LimitsSettings, Settings
    from chatbot.ui.auth import Users

log = logging.getLogger(__name__)


class SecurityHeaders:
    """ASGI middleware: every HTTP response carries medchat's Content-Security-Policy (no remote
    images, frames or objects) and `nosniff`, whatever a document or an answer contains."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from chatbot.ui.render import CONTENT_SECURITY_POLICY

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"content-security-policy", b"x-content-type-options")
                ]
                headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """ASGI middleware: a request body larger than `limit` bytes gets 413 before the app reads it:
    at once when its Content-Length says so, else as soon as the bytes received pass the limit. A
    100 MB "vote" or a 14 MB "conversation" is never parsed, stored or written to a log."""

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", []) if k.lower() == b"content-length"), None)
        try:
            length = int(declared) if declared is not None else 0
        except ValueError:
            length = self.limit + 1  # a Content-Length that is no number is refused too
        if length > self.limit:
            await _refuse_large(send, length, self.limit)
            return
        from starlette.exceptions import HTTPException

        received = 0
        responded = False

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # a body sent without its length: refused as it passes
                    raise HTTPException(413, _too_large(received, self.limit))
            return message

        async def watch(message: Any) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except HTTPException as e:
            if e.status_code != 413 or responded:
                raise
            await _refuse_large(send, received, self.limit)


def _too_large(size: int, limit: int) -> str:
    return (
        f"The request ({size:,} bytes) is over the limit of {limit // 1024:,} KB: shorten the question or "
        "the conversation (New conversation), or ask an admin to raise MEDCHAT_LIMITS__REQUEST_KB."
    )


async def _refuse_large(send: Any, size: int, limit: int) -> None:
    from chatbot.ui.auth import _json

    log.warning("request refused: a body of %s bytes is over the limit of %s", f"{size:,}", f"{limit:,}")
    await _json(send, 413, _too_large(size, limit))


def short_tracebacks() -> None:
    """Gradio prints a failed event's traceback with the exception's message whole, and a component's
    message quotes the value it refused ("Value: <100 MB> is not in the list of choices"): the lines
    it prints are cut to a short prefix, so that the log never holds more than that of anyone's text."""
    import sys
    import traceback
    import types

    import gradio.queueing
    import gradio.route_utils
    import gradio.routes
    import gradio.utils

    def print_exc(limit: int | None = None, file: Any = None, chain: bool = True) -> None:
        text = traceback.format_exc(limit=limit, chain=chain)
        print("\n".join(short_line(line) for line in text.splitlines()), file=file or sys.stderr)

    shim = types.SimpleNamespace(
        **{k: getattr(traceback, k) for k in dir(traceback) if not k.startswith("__")}
    )
    shim.print_exc = print_exc
    for module in (gradio.queueing, gradio.route_utils, gradio.routes, gradio.utils):
        if getattr(module, "traceback", None) is traceback:
            module.traceback = shim  # type: ignore[attr-defined]


def short_line(line: str, keep: int = 200) -> str:
    """A log line cut to `keep` characters, saying how long it was."""
    return line if len(line) <= keep else f"{line[:keep]}… [{len(line):,} characters in all]"


def launch_options(*middleware: Any, limits: LimitsSettings | None = None) -> dict[str, Any]:
    """What `launch()` needs besides the address: the page's CSS, the request body limit, the security
    headers and the admins-only export downloads (after any `middleware` given). Used by `serve_app`
    and by tests that launch the app themselves."""
    from starlette.middleware import Middleware

    from chatbot.settings import LimitsSettings
    from chatbot.ui.app import CSS
    from chatbot.ui.downloads import ExportDownloads

    limits = limits or LimitsSettings()
    short_tracebacks()
    patient_startup_check()
    stack = [
        Middleware(BodyLimit, limit=limits.request_kb * 1024),
        *middleware,
        Middleware(SecurityHeaders),
        Middleware(ExportDownloads),
    ]
    return {"css": CSS, "app_kwargs": {"middleware": stack}}


STARTUP_CHECK_S = 60.0


def patient_startup_check() -> None:
    """Gradio checks that its own page answers before `launch()` returns, and gives up after one 3 s
    timeout: on a busy machine (load 12 on 2 cores) `medchat serve` then died with "When localhost is
    not accessible, a shareable link must be created". We never make share links; the page is given
    up to `STARTUP_CHECK_S` seconds to answer instead."""
    import gradio.networking as networking

    if getattr(networking.url_ok, "medchat_patient", False):
        return
    quick = networking.url_ok

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + STARTUP_CHECK_S
        while True:
            if quick(url):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)

    url_ok.medchat_patient = True  # type: ignore[attr-defined]
    networking.url_ok = url_ok


def launch_local(app: Any, users: Users) -> str:
    """Start `app` on a free 127.0.0.1 port without blocking, with the headers, downloads and logins
    `serve` gives it; returns its address. For tests and benchmarks that drive the real page."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    trust_forwarded_from([])
    app.queue(default_concurrency_limit=4).launch(
        **launch_options(),
        server_name="127.0.0.1",
        server_port=port,
        max_threads=MAX_THREADS,
        prevent_thread_lock=True,
        quiet=True,
        auth=users.check,
    )
    return f"http://127.0.0.1:{port}/"


MAX_THREADS = 256


def thread_count(settings: Settings) -> int:
    """Gradio's worker threads: a streamed answer holds one while it waits for its next piece, so
    every answer generated at once needs its own, with room for the emergency checks and the
    other events beside them."""
    return max(MAX_THREADS, settings.generation.generations_at_once + 64)


def trust_forwarded_from(proxies: list[str]) -> None:
    """Believe X-Forwarded-For only from these addresses (`ui.trusted_proxies`; none by default).

    uvicorn, which Gradio starts without saying, believes it from 127.0.0.1 unless FORWARDED_ALLOW_IPS
    says otherwise: then anyone on this machine could claim any address and escape sign-in throttling.
    Read when the server starts, so this runs before `launch()`."""
    import os

    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(p.strip() for p in proxies if p.strip())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(
    settings: Settings,
    users: Users,
    *,
    login: bool,
    open_network: bool = False,
    users_file: Path | None = None,
) -> None:
    """Refuse a server that anyone on the network could use as admin. `users_file` is the file the
    accounts were read from (`serve --users`), named in the message instead of the default one."""
    host = settings.ui.host
    if _loopback(host):
        return
    if login and not users:
        raise ConfigError(
            f"no users in {users_file or settings.users_path}: add annotators with "
            "`medchat prefs add-user NAME` before listening on a non-local address"
        )
    if not login and not open_network:
        raise ConfigError(
            f"refusing to listen on {host} without logins: everyone who can reach it would be an admin "
            "(results, exports). Add accounts with `medchat prefs add-user NAME` and drop --no-login, "
            "listen on 127.0.0.1, or, on a network you trust completely, add --insecure-open-network"
        )


def guard_middleware(limits: LimitsSettings) -> Any:
    """The middleware that throttles sign-ins and expires sessions (`launch(app_kwargs=...)`)."""
    from starlette.middleware import Middleware

    from chatbot.ui.auth import LoginGuard, LoginThrottle

    return Middleware(
        LoginGuard,
        throttle=LoginThrottle(limits.login_failures, limits.login_window_s),
        session_s=limits.session_hours * 3600,
    )


def serve_app(
    settings: Settings,
    *,
    users_file: Path | None = None,
    login: bool | None = None,
    open_network: bool = False,
    announce: Callable[[], None] | None = None,
) -> None:
    """Build and launch the app; blocks until interrupted. `announce` runs once it is listening."""
    from chatbot.chain import Chain
    from chatbot.labelling.store.prefs import open_store
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import Users

    login = settings.prefs.require_login if login is None else login
    path = (users_file or settings.users_path).expanduser()
    if users_file is not None and not path.is_file():
        # a mistyped --users must not quietly serve without logins
        raise ConfigError(
            f"no users file at {path} (--users): give the YAML file `medchat prefs add-user` writes"
        )
    users = Users.load(path)
    check_access(settings, users, login=login, open_network=open_network, users_file=path)
    if not login and not _loopback(settings.ui.host):
        log.warning(
            "INSECURE: serving %s without logins (--insecure-open-network): anyone who can reach it is admin",
            settings.ui.host,
        )
    chain = Chain(settings)
    chain.retriever  # noqa: B018 -- fail now, not on the first question, if there is no index
    store = open_store(settings)
    app = build_app(chain, store=store, users=users)
    auth = users.check if (login and users) else None
    if auth is None:
        log.warning("serving without logins: judgments are recorded as annotator 'local'")
    guard = guard_middleware(settings.limits)
    if settings.prefs.prepare_ahead:  # queued pairs are written before anyone presses Next
        from chatbot.labelling.worker import PrepareWorker

        PrepareWorker(app.medchat_compare, ahead=settings.prefs.prepare_ahead).start()  # type: ignore[attr-defined]
    trust_forwarded_from(settings.ui.trusted_proxies)
    app.queue(default_concurrency_limit=4).launch(
        **launch_options(guard, limits=settings.limits),
        # the chat event is unlimited (an emergency is answered at once, chatbot.ui.app): threads enough
        # for everyone waiting for the model and the emergency check beside them
        max_threads=thread_count(settings),
        server_name=settings.ui.host,
        server_port=settings.ui.port,
        share=False,
        inbrowser=False,
        # only medchat's own messages reach the browser; anything else is logged, not shown
        show_error=False,
        quiet=True,
        auth=auth,
        auth_message="Sign in with the annotator account your admin gave you." if auth else None,
        prevent_thread_lock=True,
    )
    if announce is not None:
        announce()
    app.block_thread()
