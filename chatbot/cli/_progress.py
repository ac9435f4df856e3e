"""A progress bar with an ETA for long commands, on stderr, that stays readable in logs.

click's own bar prints nothing but its label when stderr is not a terminal (a `nohup` run, a CI
log), so a run of many minutes looked hung; here a pipe gets one plain line every `every_s` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 05 s', '1 h 02 min': short enough for one line, exact enough to plan by."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Items done out of a total and the time left, estimated from the mean time per item so far.

    At a terminal the bar is redrawn in place after each item; elsewhere a line is written at the
    start, at most every `every_s` seconds after, and at the end, so a log shows steady progress."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: TextIO | None = None,
        every_s: float = 10.0,
        width: int = 24,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.total = max(0, total)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.width = width
        self.clock = clock
        self.tty = tty if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.started = clock()
        self._last_line = self.started
        self._write(final=False, force=True)

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far; None before the first item gives a pace."""
        if self.done == 0:
            return None
        per_item = (self.clock() - self.started) / self.done
        return per_item * (self.total - self.done)

    def status(self) -> str:
        """'12/40 (30%) · 4 min 10 s left': what both the bar and the plain lines say."""
        pct = 100 * self.done // self.total if self.total else 100
        eta = self.eta_s()
        if self.done >= self.total:
            left = f"took {format_duration(self.clock() - self.started)}"
        else:
            left = "estimating time left" if eta is None else f"{format_duration(eta)} left"
        return f"{self.done}/{self.total} ({pct}%) · {left}"

    def advance(self, n: int = 1) -> None:
        """Count `n` more items done and show it (plain lines only when `every_s` has passed)."""
        self.done = min(self.total, self.done + n)
        self._write(final=False, force=False)

    def close(self) -> None:
        """The final state, always written, and the line ended at a terminal."""
        self._write(final=True, force=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, *, final: bool, force: bool) -> None:
        if self.tty:
            filled = self.width * self.done // self.total if self.total else self.width
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.status()}\x1b[K" + ("\n" if final else ""))
            self.stream.flush()
            return
        now = self.clock()
        if force or now - self._last_line >= self.every_s:
            self._last_line = now
            self.stream.write(f"{self.label}: {self.status()}\n")
            self.stream.flush()
