"""Batch scoring: one chat completion per row, sent concurrently, returned in row order.

Transient failures (429, 5xx, connection errors, timeouts) are retried by the OpenAI client with
exponential backoff and jitter, honouring Retry-After, up to `max_retries`. A row that still fails
is recorded in the `error` column, or, with `on_row_error=fail`, fails the request. Deterministic
requests (temperature 0 or a seed, and n 1) that are identical within one batch are sent once and
their answer is given to each row. Rows unfinished at the batch deadline get a deadline error.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

import openai
import pandas as pd

from nim_drum.config.drum_run import DrumRun
from nim_drum.config.settings import Settings
from nim_drum.serving.deadline import Deadline, DeadlinePassed, batch_deadline, within_deadline
from nim_drum.serving.progress import BatchProgress
from nim_drum.serving.requests import batch_rows, distinct_requests
from nim_drum.serving.results import RowResult, batch_summary, raise_for_failed_rows, status_failure, to_frame
from nim_drum.serving.structured import answer_problem

log = logging.getLogger(__name__)


def score_frame(
    data: pd.DataFrame, client: openai.OpenAI, model: str, settings: Settings, run: DrumRun
) -> pd.DataFrame:
    """Complete every row's prompt; the output has exactly one row per input row, in order."""
    batch = batch_rows(data, settings, client)
    deadline, progress = batch_deadline(settings, run), BatchProgress.of(len(data))
    requests, rows_of = distinct_requests(batch, settings)
    progress.add(batch.unsendable(), failed=True, completion_tokens=0)
    bounded = within_deadline(client, deadline, settings.request_timeout)
    answers = send_all(requests, rows_of, bounded, model, settings, deadline, progress)
    by_row = {row: answers[key] for key, rows in rows_of.items() for row in rows}
    results = [by_row.get(row) or batch.input_error(row) for row in range(len(data))]
    progress.write()
    log.info(batch_summary(results, time.monotonic() - deadline.started, len(by_row) - len(requests)))
    if settings.on_row_error == "fail":
        raise_for_failed_rows(results)
    frame = to_frame(results, run.target_name, data.index, with_choices=settings.n > 1, adapters=batch.adapters)
    if len(frame) != len(data):  # DRUM does not check this, and a lost row is a silent error.
        raise AssertionError(f"scored {len(frame)} rows for {len(data)} input rows")
    return frame


def send_all(
    requests: dict[str, dict], rows_of: dict[str, list[int]], client: openai.OpenAI, model: str,
    settings: Settings, deadline: Deadline, progress: BatchProgress,
) -> dict[str, RowResult]:
    """Every request's result; those still unfinished at the deadline are abandoned, not waited for."""
    started: dict[str, list[float]] = {}
    answers: dict[str, RowResult] = {}
    pool = ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="score")
    futures: dict[Future, str] = {
        pool.submit(send_one, client, model, settings, request, deadline, started.setdefault(key, [])): key
        for key, request in requests.items()
    }
    try:
        for future in as_completed(futures, timeout=deadline.left()):
            key = futures[future]
            answers[key] = result = future.result()
            rows = len(rows_of[key])
            progress.add(rows, failed=bool(result.error), completion_tokens=(result.completion_tokens or 0) * rows)
    except TimeoutError:
        answers.update({key: f.result() for f, key in futures.items() if f.done() and not f.cancelled()})
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for key in requests.keys() - answers.keys():
        answers[key] = RowResult([], error=deadline.message(), latency_ms=_ms_since(started[key]))
    return answers


def send_one(
    client: openai.OpenAI, model: str, settings: Settings, request: dict, deadline: Deadline, started: list
) -> RowResult:
    """One request's completion. Failures become the row's `error`; they never cost other rows."""
    started.append(time.monotonic())
    try:
        raw = client.chat.completions.with_raw_response.create(**{"model": model, **request})  # a row's adapter wins
    except openai.APIStatusError as err:
        return status_failure(err, model, settings.max_retries, _ms_since(started))
    except (openai.APIError, DeadlinePassed) as err:  # connection errors and timeouts, after every retry
        passed = isinstance(err, DeadlinePassed) or (deadline.left() or 1) <= 0
        error = deadline.message() if passed else f"{type(err).__name__}: {getattr(err, 'message', err)}"
        return RowResult([], error=error, retries=0 if passed else settings.max_retries, latency_ms=_ms_since(started))
    response = raw.parse()
    usage = response.usage
    choices = [choice.message.content or "" for choice in response.choices]
    return RowResult(
        choices=choices,
        finish_reason=response.choices[0].finish_reason if response.choices else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        error=answer_problem(choices) if settings.response_format else None,
        retries=raw.retries_taken,
        latency_ms=_ms_since(started),
    )


def _ms_since(started: list[float]) -> int:
    """Milliseconds since a request started (0 when it never started)."""
    return round((time.monotonic() - started[0]) * 1000) if started else 0
