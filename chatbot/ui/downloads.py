"""Export downloads for admins, straight from the database to the browser: no file on disk.

Gradio serves every file an event returns from its temp folder to anyone signed in who knows the URL
(`/gradio_api/file=...`), so exports never go through `gr.File`. `ExportDownloads` (ASGI middleware,
installed by `chatbot.ui.serve.launch_options`) answers `GET .../medchat/export/FORMAT.jsonl` and
`FORMAT.excluded.jsonl` itself: it reads Gradio's session cookie, refuses anyone who is not an admin,
builds the export in memory and sends it as an attachment that is not cached.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

if TYPE_CHECKING:
    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.ui.auth import Users

log = logging.getLogger(__name__)

ROUTE = "medchat/export/"
_NAME = re.compile(r"/medchat/export/([a-z]+(?:-[a-z]+)*)(\.excluded)?\.jsonl")  # mixed-prompt too
ADMINS_ONLY = "Exports are for admins only: ask an admin (`medchat prefs add-user NAME --admin`)."
SIGN_IN = "Sign in first: exports are for admins only."


@dataclass(frozen=True)
class Exports:
    """What the download route needs from the app (`build_app` hangs it on the Blocks)."""

    store: PreferenceStore
    users: Users


def download_links(fmt: str, aggregate: str = "majority") -> tuple[str, str]:
    """Relative URLs of an export's rows and exclusions (relative, so a root path is kept)."""
    query = urlencode({"aggregate": aggregate})
    return f"{ROUTE}{fmt}.jsonl?{query}", f"{ROUTE}{fmt}.excluded.jsonl?{query}"


async def _user(server: Any, scope: dict[str, Any]) -> tuple[bool, str | None]:
    """(whether logins are on, the signed-in user) as Gradio's own `/user` route decides it."""
    from starlette.requests import Request

    dependency = getattr(server, "auth_dependency", None)
    if dependency is not None:
        user = dependency(Request(scope))
        if inspect.isawaitable(user):
            user = await user
        return True, user
    if getattr(server, "auth", None) is None:
        return False, None
    cookies = Request(scope).cookies
    cookie_id = getattr(server, "cookie_id", "")
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    user = server.tokens.get(token) if token else None
    return True, user


class ExportDownloads:
    """ASGI middleware: the admins-only export route; every other request passes through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", "")).rstrip("/")
        if root and path.startswith(root + "/"):
            path = path[len(root) :]
        if scope["type"] != "http" or not path.startswith("/medchat/export/"):
            await self.app(scope, receive, send)
            return
        server = scope.get("app")
        blocks = server.get_blocks() if server is not None and hasattr(server, "get_blocks") else None
        exports: Exports | None = getattr(blocks, "medchat_exports", None)
        match = _NAME.fullmatch(path)
        if exports is None or match is None or scope.get("method") not in ("GET", "HEAD"):
            await _send(send, 404, b"No such export.\n")
            return
        logins, user = await _user(server, scope)
        if logins and user is None:
            await _send(send, 401, f"{SIGN_IN}\n".encode())
            return
        if not exports.users.is_admin(user):
            log.warning("export download refused for %r: not an admin", user)
            await _send(send, 403, f"{ADMINS_ONLY}\n".encode())
            return
        fmt, excluded = match.group(1), bool(match.group(2))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        aggregate = (query.get("aggregate") or ["majority"])[0]
        try:
            body = await _build(exports.store, fmt, aggregate, excluded)
        except Exception as e:  # an unknown format or aggregation: one sentence, no traceback
            from chatbot.errors import MedchatError

            if not isinstance(e, MedchatError):
                raise
            await _send(send, 400, f"{e}\n".encode())
            return
        name = f"medchat-{fmt}{'.excluded' if excluded else ''}.jsonl"
        log.info("export %s downloaded by %r (%d bytes)", name, user, len(body))
        await _send(
            send,
            200,
            b"" if scope.get("method") == "HEAD" else body,
            content_type=b"application/x-ndjson; charset=utf-8",
            extra=[
                (b"content-disposition", f'attachment; filename="{name}"'.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        )


async def _build(store: PreferenceStore, fmt: str, aggregate: str, excluded: bool) -> bytes:
    from anyio import to_thread

    from chatbot.labelling.export import SelectOptions, export, export_bytes

    def run() -> bytes:
        rows, left_out = export_bytes(export(store, fmt, SelectOptions(aggregate=aggregate)))
        return left_out if excluded else rows

    return await to_thread.run_sync(run)


async def _send(
    send: Any,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"cache-control", b"no-store"), *(extra or [])]
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
