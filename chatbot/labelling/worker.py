"""A background thread that keeps the next queued pairs generated, so nobody waits on Next.

`medchat prefs prepare` does the same once, as a batch step; the worker runs inside `medchat serve`
and tops the supply up as annotators use it. It generates one pair at a time with the shared engine,
as background work: a person waiting for the model (chat, Ask both, Next) is served first.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatbot.labelling.service import CompareService

log = logging.getLogger(__name__)


class PrepareWorker(threading.Thread):
    def __init__(self, service: CompareService, *, ahead: int, poll_s: float = 2.0) -> None:
        super().__init__(name="medchat-prepare", daemon=True)
        self.service, self.ahead, self.poll_s = service, ahead, poll_s
        self.stopped = threading.Event()
        self.prepared = 0

    def step(self) -> int:
        """Prepare pairs until `ahead` are ready (or the queue has no unprepared item); how many."""
        made = 0
        while not self.stopped.is_set() and self.service.store.ready_items() < self.ahead:
            if not self.service.prepare(1):
                break
            made += 1
        return made

    def run(self) -> None:
        from chatbot.engines.base import background

        while not self.stopped.is_set():
            try:
                with background():  # a person asking (chat, Ask both, Next) gets the model first
                    self.prepared += self.step()
            except Exception:  # a failed generation must not end the worker; the next item is tried later
                log.exception("preparing a queued pair failed")
            self.stopped.wait(self.poll_s)

    def stop(self) -> None:
        self.stopped.set()
