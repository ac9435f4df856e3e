"""JSON Lines in, one record at a time, for the commands that read a file of them (`verify`, `triage`).

A line is read with a size cap, so a runaway 10 MB line is skipped without being held or parsed, and
each bad line is reported by number while the rest of the file goes on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

# one record: far above any real answer with its passages, low enough that a runaway line is not parsed
MAX_LINE_BYTES = 2_000_000


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes | None, str]]:
    """(line number, the line or None, why it was skipped), never holding more than the cap."""
    n = 0
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:  # skip to the end of the oversized line
                rest = handle.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield n, None, f"longer than {MAX_LINE_BYTES // 1_000_000} MB; split it into smaller records"
            continue
        yield n, line, ""


def records(handle: IO[bytes]) -> Iterator[tuple[int, Any, str]]:
    """(line number, the parsed JSON value, "") for each non-blank line, or (n, None, why) for a line
    that is too long or not JSON."""
    for n, raw, why in _lines(handle):
        if raw is None:
            yield n, None, why
            continue
        if not raw.strip():
            continue
        try:
            yield n, json.loads(raw), ""
        except (ValueError, UnicodeDecodeError) as e:
            yield n, None, f"not valid JSON ({e})"
