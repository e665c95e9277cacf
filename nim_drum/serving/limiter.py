"""One concurrency limit per engine, shared by every batch chunk and chat request in the process.

DataRobot sends `num_concurrent` chunks of a batch job at once, and chat requests arrive beside
them (docs/drum.md: under DRUM's gevent worker they all run in one process). Each draws permits
from the engine's one `EngineLimiter`, so the engine never sees more than the limit, whatever the
number of chunks. Waiting requests are granted in turn, one owner (a chunk, a chat request) after
another, so a chunk that arrives later is served from its first permit on and none starves.
Works with threads and with gevent's patched ones (one threading.Event per waiter).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from nim_drum.serving.adaptive import AdaptiveLimit


@dataclass
class Permit:
    """The right to have one request in flight; give it back with `EngineLimiter.release`."""

    started: float
    granted: threading.Event = field(default_factory=threading.Event)


class EngineLimiter:
    def __init__(self, control: AdaptiveLimit, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[int], None] | None = None):
        self.control = control
        self.clock = clock
        self.on_change = on_change or (lambda limit: None)
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._waiting: dict[Hashable, deque[Permit]] = {}  # by owner, in turn order

    @property
    def limit(self) -> int:
        return self.control.limit

    def acquire(self, owner: Hashable, timeout: float | None = None) -> Permit | None:
        """A permit for `owner`, once its turn comes; None when `timeout` seconds pass first."""
        permit = Permit(started=0.0)
        with self._lock:
            self._waiting.setdefault(owner, deque()).append(permit)
            self._grant()
        if permit.granted.wait(timeout):
            return permit
        with self._lock:
            if permit.granted.is_set():  # granted while the wait timed out
                return permit
            queue = self._waiting.get(owner)
            if queue is not None and permit in queue:
                queue.remove(permit)
                if not queue:
                    del self._waiting[owner]
        return None

    def release(self, permit: Permit, tokens: int = 0, overloaded: bool = False) -> None:
        """The permit's request ended with `tokens` output tokens; overloaded: the engine said 429 or 503."""
        with self._lock:
            self.in_flight -= 1
            saturated = bool(self._waiting)
            before = self.control.limit
            self.control.finished(permit.started, self.clock(), tokens, overloaded, saturated)
            changed = self.control.limit != before
            self._grant()
        if changed:
            self.on_change(self.control.limit)

    def engine_queue(self, queued: int) -> None:
        """Requests the engine reports waiting beyond its own batch (its metrics)."""
        with self._lock:
            self.control.engine_queue(queued, self.in_flight, self.clock())

    def _grant(self) -> None:
        while self.in_flight < self.control.limit and self._waiting:
            owner = next(iter(self._waiting))
            queue = self._waiting.pop(owner)
            permit = queue.popleft()
            if queue:
                self._waiting[owner] = queue  # to the back of the turn order
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            permit.started = self.clock()
            permit.granted.set()
