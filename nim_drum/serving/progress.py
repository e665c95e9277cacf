"""Progress of one batch: a log line every 10 s on long batches, and a file the batch CLI draws a bar from.

When NIM_DRUM_PROGRESS_FILE is set (`python -m nim_drum.devtools.batch` sets it for `drum score`),
the counts are written there as one JSON object, replaced atomically at most twice a second.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from nim_drum.rates import per_second, seconds_left

PROGRESS_FILE_ENV = "NIM_DRUM_PROGRESS_FILE"
LOG_EVERY_SECONDS = 10
WRITE_EVERY_SECONDS = 0.5

log = logging.getLogger(__name__)


@dataclass
class Counts:
    rows_total: int
    rows_done: int = 0
    failed: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    concurrency: int = 0  # the engine's concurrency limit when last written


@dataclass
class BatchProgress:
    counts: Counts
    concurrency: Callable[[], int] = lambda: 0
    started: float = field(default_factory=time.monotonic)
    path: str | None = field(default_factory=lambda: os.environ.get(PROGRESS_FILE_ENV))
    logged: float = field(default_factory=time.monotonic)
    written: float = 0.0
    log_every: float = field(default_factory=lambda: LOG_EVERY_SECONDS)

    @classmethod
    def of(cls, rows_total: int, concurrency: Callable[[], int] = lambda: 0) -> BatchProgress:
        return cls(Counts(rows_total), concurrency)

    def add(self, rows: int, failed: bool, completion_tokens: int) -> None:
        counts = self.counts
        counts.rows_done += rows
        counts.failed += rows if failed else 0
        counts.completion_tokens += completion_tokens
        counts.seconds = time.monotonic() - self.started
        counts.concurrency = self.concurrency()
        if counts.seconds >= self.log_every and time.monotonic() - self.logged >= self.log_every:
            self.logged = time.monotonic()
            log.info(self.line())
        if time.monotonic() - self.written >= WRITE_EVERY_SECONDS:
            self.write()

    def line(self) -> str:
        counts = self.counts
        eta = seconds_left(counts.rows_total - counts.rows_done, per_second(counts.rows_done, counts.seconds))
        return (
            f"Batch progress: rows {counts.rows_done}/{counts.rows_total} failed={counts.failed} "
            f"tokens/s={per_second(counts.completion_tokens, counts.seconds):.1f} concurrency={counts.concurrency} "
            f"ETA {eta:.0f} s"
        )

    def write(self) -> None:
        self.written = time.monotonic()
        if not self.path:
            return
        temporary = f"{self.path}.tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(asdict(self.counts), file)
        os.replace(temporary, self.path)


def read_progress(path: str) -> Counts | None:
    """The counts a batch last wrote to path, or None before it wrote any."""
    try:
        with open(path, encoding="utf-8") as file:
            return Counts(**json.load(file))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
