"""Annotator accounts from a YAML users file; passwords stored as salted PBKDF2 hashes.

    users:
      alice: {role: clinician, password: "pbkdf2_sha256$200000$<salt hex>$<hash hex>"}

`medchat prefs add-user NAME --role ROLE` writes entries; the app checks logins with
`Users.check`, which Gradio calls as its `auth` function.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.errors import ConfigError

log = logging.getLogger(__name__)

ITERATIONS = 200_000


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def _parse(stored: str) -> tuple[int, bytes, str] | None:
    """(iterations, salt, hex digest) of a stored hash, or None when it is not one we wrote."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        rounds, salt_bytes = int(iterations), bytes.fromhex(salt)
        bytes.fromhex(digest)
    except ValueError:
        return None
    if scheme != "pbkdf2_sha256" or not 1_000 <= rounds <= 10_000_000 or not salt_bytes or not digest:
        return None
    return rounds, salt_bytes, digest


def verify_password(password: str, stored: str) -> bool:
    parsed = _parse(stored)
    if parsed is None:
        return False
    rounds, salt, digest = parsed
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    return hmac.compare_digest(got.hex(), digest)


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """A hash of no one's password: checked for unknown names so that they take as long as known ones."""
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_hex(16)))
    return _DUMMY[0]


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str
    admin: bool = False


class Users:
    """The accounts, read again from their file whenever it changes, so that a user added with
    `medchat prefs add-user` while `serve` runs can sign in at once (`add_user` replaces the file
    whole, so a reader never sees half of it).

    A file that is damaged or removed meanwhile keeps the accounts last read (and says so in the log):
    a half-edited file must not sign everybody out, nor make the app open. Whether logins are on at
    all is settled when the app starts (`open`): a user added to an app started without any does not
    lock its one local user out of the admin pages."""

    def __init__(self, users: dict[str, User], path: Path | None = None) -> None:
        self.users = users
        self.path = path
        self.open = not users
        """No accounts when the app started: the one local user is admin (see `is_admin`)."""
        self._seen = _file_stamp(path)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> Users:
        return cls(cls._read(path), path)

    @staticmethod
    def _read(path: Path) -> dict[str, User]:
        from chatbot.limits import load_yaml

        if not path.is_file():
            return {}
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(
                f"users file {path} cannot be read ({e}): give a readable UTF-8 YAML file"
            ) from e
        data = load_yaml(text, f"users file {path}") or {}
        entries = data.get("users") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise ConfigError(f"users file {path}: expected a mapping `users:` of name -> {{role, password}}")
        users = {}
        for name, spec in entries.items():
            if not isinstance(spec, dict) or not spec.get("password"):
                raise ConfigError(f"users file {path}: user {name!r} needs a `password` hash")
            if _parse(str(spec["password"])) is None:
                raise ConfigError(
                    f"users file {path}: the password hash of user {name!r} is damaged; "
                    f"set a new password with `medchat prefs add-user {name}`"
                )
            users[str(name)] = User(
                str(name), str(spec.get("role", "annotator")), str(spec["password"]), bool(spec.get("admin"))
            )
        if users and path.stat().st_mode & 0o077:
            log.warning("users file %s can be read by other accounts: `chmod 600 %s`", path, path)
        return users

    def _current(self) -> dict[str, User]:
        """The accounts, read again first if the file changed since it was last read."""
        if self.path is None:
            return self.users
        with self._lock:
            stamp = _file_stamp(self.path)
            if stamp == self._seen:
                return self.users
            self._seen = stamp  # a bad file is reported once, not at every sign-in
            if stamp is None:
                log.error(
                    "users file %s is gone: keeping the %d accounts read before", self.path, len(self.users)
                )
                return self.users
            try:
                self.users = self._read(self.path)
            except (ConfigError, OSError) as e:
                log.error(
                    "users file %s changed but cannot be read (%s): keeping the accounts read before",
                    self.path,
                    e,
                )
                return self.users
            log.info("users file %s read again: %d accounts", self.path, len(self.users))
            return self.users

    def __bool__(self) -> bool:
        return bool(self._current())

    def check(self, name: str, password: str) -> bool:
        user = self._current().get(name)
        # an unknown name costs one hash too: a fast "no" would tell who has an account
        stored = user.password_hash if user is not None else _dummy_hash()
        ok = verify_password(password, stored) and user is not None
        if not ok:
            log.warning("failed login for %r", name[:40])
        return ok

    def is_admin(self, name: str | None) -> bool:
        """Admins see results and exports; without any users (no logins) the one local user is admin."""
        if self.open:
            return True
        user = self._current().get(name or "")
        return bool(user and user.admin)

    def role(self, name: str) -> str:
        user = self._current().get(name)
        return user.role if user else "annotator"

    def is_patient(self, name: str | None) -> bool:
        """Role `patient` sees Chat only, with no answer settings: a patient neither judges answers
        nor tunes retrieval; every other role (clinician, nurse, annotator, ...) annotates."""
        if self.open:
            return False
        user = self._current().get(name or "")
        return bool(user and not user.admin and user.role.strip().lower() == "patient")


def _file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    """What changes when the file is replaced or written: inode, size, modification time (ns)."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def add_user(path: Path, name: str, password: str, *, role: str = "annotator", admin: bool = False) -> None:
    """Add or replace one user in the users file (created if missing)."""
    import yaml

    if not password.strip():
        raise ConfigError(
            f"the password for {name!r} is empty: give one (leave out --password to be asked for it)"
        )
    if not name.strip():
        raise ConfigError("the user name is empty: give a name, e.g. `medchat prefs add-user alice`")
    data: dict[str, dict[str, dict[str, object]]] = {"users": {}}
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        data["users"] = dict(loaded.get("users") or {})
    entry: dict[str, object] = {"role": role, "password": hash_password(password)}
    if admin:
        entry["admin"] = True
    data["users"][name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # password hashes are for this account's eyes only: 0600 from the first byte, not chmod-ed later
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing .tmp keeps its old mode otherwise
        f.write(yaml.safe_dump(data, sort_keys=True))
    tmp.replace(path)


# --- sign-in throttling and session expiry ---------------------------------------------------
#
# Gradio checks a login with `Users.check(name, password)`, which cannot see who is asking, and
# keeps sessions forever. `LoginGuard` wraps the app (ASGI middleware): it counts failed sign-ins per
# address and per name, refuses more with 429 once a limit is reached, and swaps Gradio's token
# table for one whose entries expire.


class LoginThrottle:
    """Failed sign-ins per key ("addr:1.2.3.4", "user:alice") within a sliding window."""

    def __init__(
        self, failures: int = 5, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures, self.window_s, self.clock = failures, window_s, clock
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failed.setdefault(key, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def wait_s(self, *keys: str) -> float:
        """Seconds until every key may try again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [
                self.window_s - (now - times[-self.failures])
                for times in (self._recent(k, now) for k in keys)
                if len(times) >= self.failures
            ]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)
            if len(self._failed) > 100_000:  # many addresses: forget the ones with nothing recent
                for key in [k for k, v in self._failed.items() if not v]:
                    del self._failed[key]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failed.pop(key, None)


class ExpiringTokens(dict):
    """Gradio's session table (token -> user name) whose sessions end `lifetime_s` after sign-in."""

    def __init__(
        self, lifetime_s: float, initial: dict[str, str] | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__()
        self.lifetime_s, self.clock = lifetime_s, clock
        self._born: dict[object, float] = {}
        for token, user in (initial or {}).items():
            self[token] = user

    def __setitem__(self, token: object, user: object) -> None:
        super().__setitem__(token, user)
        self._born[token] = self.clock()

    def _alive(self, token: object) -> bool:
        if not super().__contains__(token):
            return False
        if self.clock() - self._born.get(token, 0.0) <= self.lifetime_s:
            return True
        super().pop(token, None)
        self._born.pop(token, None)
        return False

    def __contains__(self, token: object) -> bool:
        return self._alive(token)

    def __getitem__(self, token: object) -> object:
        if not self._alive(token):
            raise KeyError(token)
        return super().__getitem__(token)

    def get(self, token: object, default: object = None) -> object:
        return super().__getitem__(token) if self._alive(token) else default

    def __delitem__(self, token: object) -> None:
        super().__delitem__(token)
        self._born.pop(token, None)

    # Gradio's /logout walks `keys()` and reads each entry: an expired one listed there made the read
    # fail (KeyError, a 500). Every view of the table shows the live sessions only.
    def _live(self) -> list[object]:
        return [token for token in list(super().keys()) if self._alive(token)]

    def keys(self) -> Any:
        return self._live()

    def __iter__(self) -> Any:
        return iter(self._live())

    def __len__(self) -> int:
        return len(self._live())

    def items(self) -> Any:
        return [(token, super(ExpiringTokens, self).get(token)) for token in self._live()]

    def values(self) -> Any:
        return [user for _, user in self.items()]

    def pop(self, token: object, *default: object) -> object:
        self._born.pop(token, None)
        return super().pop(token, *default)


class LoginGuard:
    """ASGI middleware for the Gradio app: throttled sign-ins, expiring sessions."""

    def __init__(self, app: Any, *, throttle: LoginThrottle, session_s: float) -> None:
        self.app, self.throttle, self.session_s = app, throttle, session_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        server = scope.get("app")
        if server is not None and not isinstance(getattr(server, "tokens", None), ExpiringTokens):
            server.tokens = ExpiringTokens(self.session_s, dict(getattr(server, "tokens", None) or {}))
        path = str(scope.get("path", "")).rstrip("/")
        if scope["type"] != "http" or scope.get("method") != "POST" or not path.endswith("/login"):
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > 65_536:
                await _json(send, 413, "The sign-in form is too large.")
                return
            if not message.get("more_body"):
                break
        name = await _form_user(scope, body)
        client = scope.get("client") or ("unknown", 0)
        keys = (f"addr:{client[0]}", f"user:{name}")
        wait = self.throttle.wait_s(*keys)
        if wait > 0:
            log.warning("sign-in refused for %r from %s: too many failures", name[:40], client[0])
            minutes = max(1, round(wait / 60))
            await _json(send, 429, f"Too many failed sign-ins: try again in {minutes} minute(s).")
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        status = 0

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, replay, watch)
        if status == 200:
            self.throttle.succeeded(keys[1])
        elif 400 <= status < 500:
            self.throttle.failed(*keys)


async def _form_user(scope: dict[str, Any], body: bytes) -> str:
    from starlette.requests import Request

    async def once() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, once).form()
        return str(form.get("username") or "").strip()
    except Exception:  # an unreadable form is Gradio's to refuse; count it against the address
        return ""


async def _json(send: Any, status: int, detail: str) -> None:
    import json

    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
