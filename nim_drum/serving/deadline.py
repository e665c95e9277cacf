"""The batch deadline: stop waiting before DRUM's own request timeout, so that finished rows survive.

DRUM 1.18.1 gives a request DRUM_CLIENT_REQUEST_TIMEOUT seconds (600 when unset; read in
datarobot_drum/drum/gunicorn/gunicorn.conf.py and root_predictors/prediction_server.py; 0 turns it
off). A chunk that runs past it loses every row, so by default `drum server` stops at 90% of it.
`drum score` has no request timeout, and no default deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import openai

from nim_drum.config.drum_run import DrumRun
from nim_drum.config.settings import Settings
from nim_drum.serving.chunks import fitting_chunk_bytes, fitting_request_timeout, seconds_for

DEADLINE_SHARE_OF_DRUM_TIMEOUT = 0.9


class DeadlinePassed(Exception):
    """A request attempt (a retry, usually) would start after the batch deadline."""


@dataclass
class Deadline:
    seconds: float | None
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float | None:
        """Seconds until the deadline (negative once it passed); None when there is no deadline."""
        return None if self.seconds is None else self.started + self.seconds - time.monotonic()

    def message(self) -> str:
        return f"deadline exceeded after {self.seconds or 0:g} s"


def exceeded_message(
    deadline: Deadline, finished: int, rows: int, bytes_per_row: float, settings: Settings, run: DrumRun
) -> str:
    """A deadline row's error, in numbers: how far the chunk got, and the chunk size or timeout that fits."""
    seconds = deadline.seconds or 0.0
    rate = finished / seconds if seconds else 0.0
    done = f"{deadline.message()}: {finished} of {rows} rows finished"
    if not finished:
        return f"{done}; check the engine (it finished no row in time), then rerun these rows"
    chunk = fitting_chunk_bytes(rate, seconds, bytes_per_row)
    fit = f"at {rate:.2f} rows/s, a chunk fits in {chunk} bytes (BatchPredictionJob.score chunk_size={chunk})"
    if settings.batch_deadline_seconds is not None:
        longer = f"raise batch_deadline_seconds to {seconds_for(rows, rate)}"
    else:
        timeout = fitting_request_timeout(rows, rate, DEADLINE_SHARE_OF_DRUM_TIMEOUT)
        longer = f"set DRUM_CLIENT_REQUEST_TIMEOUT to {timeout}" if timeout else "send smaller chunks"
    return f"{done}; {fit}, or {longer}; rerun these rows"


def batch_deadline(settings: Settings, run: DrumRun) -> Deadline:
    return Deadline(deadline_seconds(settings, run))


def deadline_seconds(settings: Settings, run: DrumRun) -> float | None:
    if settings.batch_deadline_seconds is not None:
        return settings.batch_deadline_seconds
    if not run.has_request_timeout() or settings.drum_client_request_timeout == 0:
        return None
    return round(settings.drum_client_request_timeout * DEADLINE_SHARE_OF_DRUM_TIMEOUT)


def within_deadline(client: openai.OpenAI, deadline: Deadline, request_timeout: float) -> openai.OpenAI:
    """A client (sharing the connection pool) whose every attempt, retries included, ends by the deadline.

    The OpenAI client calls `_prepare_options` before each attempt: there the attempt's timeout is
    capped by the time left, and an attempt that would start after the deadline is not sent.
    """
    if deadline.seconds is None:
        return client
    bounded = client.with_options()
    prepare = bounded._prepare_options

    def prepare_within_deadline(options):
        left = deadline.left() or 0.0  # not None: this deadline has seconds
        if left <= 0:
            raise DeadlinePassed(deadline.message())
        options = prepare(options)
        options.timeout = min(request_timeout, left)
        return options

    bounded._prepare_options = prepare_within_deadline  # type: ignore[method-assign]
    return bounded
