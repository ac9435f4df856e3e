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
import secrets
from dataclasses import dataclass
from pathlib import Path

from chatbot.errors import ConfigError

log = logging.getLogger(__name__)

ITERATIONS = 200_000


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str
    admin: bool = False


class Users:
    def __init__(self, users: dict[str, User]) -> None:
        self.users = users

    @classmethod
    def load(cls, path: Path) -> Users:
        import yaml

        if not path.is_file():
            return cls({})
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"users file {path} is not valid YAML: {e}") from e
        entries = data.get("users") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise ConfigError(f"users file {path}: expected a mapping `users:` of name -> {{role, password}}")
        users = {}
        for name, spec in entries.items():
            if not isinstance(spec, dict) or not spec.get("password"):
                raise ConfigError(f"users file {path}: user {name!r} needs a `password` hash")
            users[str(name)] = User(
                str(name), str(spec.get("role", "annotator")), str(spec["password"]), bool(spec.get("admin"))
            )
        return cls(users)

    def __bool__(self) -> bool:
        return bool(self.users)

    def check(self, name: str, password: str) -> bool:
        user = self.users.get(name)
        ok = user is not None and verify_password(password, user.password_hash)
        if not ok:
            log.warning("failed login for %r", name)
        return ok

    def is_admin(self, name: str | None) -> bool:
        """Admins see results and exports; without any users (no logins) the one local user is admin."""
        if not self.users:
            return True
        user = self.users.get(name or "")
        return bool(user and user.admin)

    def role(self, name: str) -> str:
        user = self.users.get(name)
        return user.role if user else "annotator"


def add_user(path: Path, name: str, password: str, *, role: str = "annotator", admin: bool = False) -> None:
    """Add or replace one user in the users file (created if missing)."""
    import yaml

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
    tmp.write_text(yaml.safe_dump(data, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
