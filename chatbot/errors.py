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
