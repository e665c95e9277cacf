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
        return f"deadline exceeded after {self.seconds:g} s; rerun these rows or raise batch_deadline_seconds"


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
