"""The errors medchat raises on purpose, each written for the person reading it.

Every message says what went wrong and what to do about it. The command line
turns them into a one-line message and a non-zero exit; the UI into `gr.Error`.
"""

from __future__ import annotations


class MedchatError(Exception):
    """Base class: a problem the user can fix, described in words they can act on."""


class ConfigError(MedchatError):
    """A setting is missing, contradictory or points at nothing."""


class IndexMissingError(MedchatError):
    """No index has been built yet."""


class IndexMismatchError(MedchatError):
    """The index was built with another embedder or chunking than the settings ask for."""


class EmptyQuestionError(MedchatError):
    """The question is empty or only whitespace."""


class ModelNotFoundError(MedchatError):
    """A model file, folder or package cannot be found."""


class DependencyMissingError(MedchatError):
    """An optional library needed for the chosen setting is not installed."""


class IngestError(MedchatError):
    """One input could not be read; the run goes on with the others."""


class DeviceError(MedchatError):
    """The configured device (e.g. CUDA) is not available."""


class OutOfMemoryError(MedchatError):
    """The model or the prompt does not fit in (GPU) memory; the message names a smaller setting."""


class ServerUnreachableError(MedchatError):
    """An OpenAI-compatible generation server cannot be reached or keeps failing."""


class ServerError(MedchatError):
    """The generation server refused the request (bad key, unknown model, bad parameters)."""


class PromptTooLongError(MedchatError):
    """The question and instructions alone do not fit the model's context window."""


class InputTooLargeError(MedchatError):
    """A question, rationale, line or file is larger than the configured limit."""


class StorageError(MedchatError):
    """medchat cannot write where it keeps its data (no permission, read-only, disk full)."""


def storage_problem(error: BaseException) -> str | None:
    """Why a write failed, in words (no permission, read-only, disk full), or None if it is no such failure.

    Recognises OS errors and the database errors (SQLite through SQLAlchemy, Chroma) they surface as;
    the caller names the place and the remedy.
    """
    import errno

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:  # the cause chain: SQLAlchemy wraps sqlite3 wraps OS errors
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if isinstance(e, OSError) and e.errno == errno.EROFS:
            return "the file system is read-only"
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return "the disk is full"
        if isinstance(e, OSError) and e.errno in (errno.ENOTDIR, errno.EEXIST):
            return "part of the path is a file, not a folder"
        text = str(e).lower()
        if "database or disk is full" in text or "no space left" in text:
            return "the disk is full"
        if "readonly database" in text or "read-only" in text or "attempt to write a readonly" in text:
            return "it is read-only (no write permission)"
        if "unable to open database file" in text:
            return "the database file cannot be opened or created there (no write permission?)"
        if "permission denied" in text:
            return "permission denied"
        e = e.__cause__ or e.__context__
    return None


def storage_failure(error: BaseException, what: str) -> StorageError | None:
    """A plain sentence for a user whose `what` (e.g. "your vote") could not be written; the detail is
    logged for the admin. None when `error` is not a failed write."""
    import logging

    why = storage_problem(error)
    if why is None:
        return None
    logging.getLogger(__name__).error("%s could not be saved (%s)", what, why, exc_info=error)
    return StorageError(
        f"{what[:1].upper()}{what[1:]} could not be saved because the server cannot write its database "
        f"({why}). Nothing was recorded: tell your admin, then try again."
    )
