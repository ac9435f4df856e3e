"""Launch the app (used by `medchat serve`): logins from the users file, 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import ipaddress
import logging
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


def launch_options(*middleware: Any) -> dict[str, Any]:
    """What `launch()` needs besides the address: the page's CSS, the security headers and the
    admins-only export downloads (after any `middleware` given). Used by `serve_app` and by tests
    that launch the app themselves."""
    from starlette.middleware import Middleware

    from chatbot.ui.app import CSS
    from chatbot.ui.downloads import ExportDownloads

    stack = [*middleware, Middleware(SecurityHeaders), Middleware(ExportDownloads)]
    return {"css": CSS, "app_kwargs": {"middleware": stack}}


def launch_local(app: Any, users: Users) -> str:
    """Start `app` on a free 127.0.0.1 port without blocking, with the headers, downloads and logins
    `serve` gives it; returns its address. For tests and benchmarks that drive the real page."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app.queue().launch(
        **launch_options(),
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        auth=users.check,
    )
    return f"http://127.0.0.1:{port}/"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(settings: Settings, users: Users, *, login: bool, open_network: bool = False) -> None:
    """Refuse a server that anyone on the network could use as admin."""
    host = settings.ui.host
    if _loopback(host):
        return
    if login and not users:
        raise ConfigError(
            f"no users in {settings.users_path}: add annotators with "
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
    users = Users.load((users_file or settings.users_path).expanduser())
    check_access(settings, users, login=login, open_network=open_network)
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
    app.queue(default_concurrency_limit=4).launch(
        **launch_options(guard),
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
