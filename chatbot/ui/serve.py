"""Launch the app (used by `medchat serve`): logins from the users file, 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.errors import ConfigError

if TYPE_CHECKING:
    from chatbot.settings import Settings

log = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_app(settings: Settings, *, users_file: Path | None = None, login: bool | None = None) -> None:
    """Build and launch the app; blocks until interrupted."""
    from chatbot.chain import Chain
    from chatbot.store.prefs import open_store
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import Users

    login = settings.prefs.require_login if login is None else login
    users = Users.load((users_file or settings.users_path).expanduser())
    if login and not users and not _loopback(settings.ui.host):
        raise ConfigError(
            f"no users in {users_file or settings.users_path}: add annotators with "
            "`medchat prefs add-user NAME` before listening on a non-local address, or pass --no-login"
        )
    chain = Chain(settings)
    chain.retriever  # noqa: B018 -- fail now, not on the first question, if there is no index
    store = open_store(settings)
    app = build_app(chain, store=store, users=users)
    auth = users.check if (login and users) else None
    if auth is None:
        log.warning("serving without logins: judgments are recorded as annotator 'local'")
    app.queue(default_concurrency_limit=4).launch(
        server_name=settings.ui.host,
        server_port=settings.ui.port,
        share=False,
        inbrowser=False,
        show_error=True,
        quiet=True,
        auth=auth,
        auth_message="Sign in with the annotator account your admin gave you." if auth else None,
    )
