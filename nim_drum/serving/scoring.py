"""Batch scoring: one chat completion per row, sent concurrently, returned in row order.

Requests go out as fast as the engine's one limiter (serving/limiter.py) lets them: every chunk and chat
request in the process shares it, and it adapts to the engine's throughput knee (serving/adaptive.py).
Transient failures (408, 409, 429, 5xx, connection errors, timeouts) are retried by the OpenAI client with
exponential backoff and jitter, honouring Retry-After, up to `max_retries`. A row that still fails
is recorded in the `error` column, or, with `on_row_error=fail`, fails the request. Deterministic
requests (temperature 0 or a seed, and n 1) that are identical within one batch are sent once and
their answer is given to each row. Rows unfinished at the batch deadline get a deadline error.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace

import openai
import pandas as pd

from nim_drum.config.drum_run import DrumRun
from nim_drum.config.settings import Settings
from nim_drum.serving.deadline import Deadline, DeadlinePassed, batch_deadline, exceeded_message, within_deadline
from nim_drum.serving.limiter import EngineLimiter, Permit
from nim_drum.serving.progress import BatchProgress
from nim_drum.serving.prompts import row_prompts
from nim_drum.serving.requests import distinct_requests
from nim_drum.serving.results import RowResult, batch_summary, raise_for_failed_rows, status_failure, to_frame
from nim_drum.serving.structured import answer_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineTarget:
    """Where a batch's requests go: the engine's client, the model to ask for, and the engine's limiter."""

    client: openai.OpenAI
    model: str
    limiter: EngineLimiter


def score_frame(data: pd.DataFrame, target: EngineTarget, settings: Settings, run: DrumRun) -> pd.DataFrame:
    """Complete every row's prompt; the output has exactly one row per input row, in order."""
    prompts = row_prompts(data, settings.prompt_template, settings.prompt_column_name)
    deadline = batch_deadline(settings, run)
    progress = BatchProgress.of(len(data), concurrency=lambda: target.limiter.limit)
    requests, rows_of = distinct_requests(prompts.texts, settings)
    progress.add(prompts.texts.count(None), failed=True, completion_tokens=0)
    bounded = replace(target, client=within_deadline(target.client, deadline, settings.request_timeout))
    answers = send_all(requests, rows_of, bounded, settings, deadline, progress)
    empty = RowResult([], error=prompts.empty_reason, input_fault=True)
    by_row = {row: answers[key] for key, rows in rows_of.items() for row in rows}
    results = [by_row.get(row, empty) for row in range(len(data))]
    late = explain_unfinished(results, data, deadline, settings, run)
    progress.write()
    summary = batch_summary(results, time.monotonic() - deadline.started, len(by_row) - len(requests))
    log.info("%s concurrency=%d%s", summary, target.limiter.limit, f"; {late}" if late else "")
    if settings.on_row_error == "fail":
        raise_for_failed_rows(results)
    frame = to_frame(results, run.target_name, data.index, with_choices=settings.n > 1)
    if len(frame) != len(data):  # DRUM does not check this, and a lost row is a silent error.
        raise AssertionError(f"scored {len(frame)} rows for {len(data)} input rows")
    return frame


def explain_unfinished(
    results: list[RowResult], data: pd.DataFrame, deadline: Deadline, settings: Settings, run: DrumRun
) -> str | None:
    """Give rows left at the deadline an error that says, in numbers, what would have fitted."""
    unfinished = [row for row, result in enumerate(results) if result.unfinished]
    if not unfinished:
        return None
    bytes_per_row = len(data.to_csv(index=False).encode()) / max(len(data), 1)
    message = exceeded_message(deadline, len(results) - len(unfinished), len(results), bytes_per_row, settings, run)
    for row in unfinished:
        results[row] = replace(results[row], error=message)
    return message


def send_all(
    requests: dict[str, dict], rows_of: dict[str, list[int]], target: EngineTarget, settings: Settings,
    deadline: Deadline, progress: BatchProgress,
) -> dict[str, RowResult]:
    """Every request's result; those still unfinished at the deadline are abandoned, not waited for."""
    started: dict[str, list[float]] = {}
    answers: dict[str, RowResult] = {}
    turn = object()  # this chunk's place in the limiter's turns
    # Threads only wait for their permit: the limiter, not the pool, bounds what the engine sees.
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(requests), target.limiter.control.ceiling)),
                              thread_name_prefix="score")
    futures: dict[Future, str] = {
        pool.submit(send_when_allowed, target, turn, settings, request, deadline, started.setdefault(key, [])): key
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
        answers[key] = RowResult([], unfinished=True, latency_ms=_ms_since(started[key]))
    return answers


def send_when_allowed(
    target: EngineTarget, turn: object, settings: Settings, request: dict, deadline: Deadline, started: list
) -> RowResult:
    """One request, sent once the engine's limiter has room for it; a row left unsent at the deadline."""
    permit = target.limiter.acquire(turn, timeout=deadline.left())
    if permit is None:
        return RowResult([], unfinished=True)
    result = RowResult([], unfinished=True)
    try:
        result = send_one(target.client, target.model, settings, request, deadline, started)
    finally:
        give_back(target.limiter, permit, result)
    return result


def give_back(limiter: EngineLimiter, permit: Permit, result: RowResult) -> None:
    # A retry means the OpenAI client met a 408, 409, 429, 5xx or a timeout: the engine is overloaded.
    overloaded = bool(result.retries) or (result.status in (429, 503))
    limiter.release(permit, tokens=result.completion_tokens or 0, overloaded=overloaded)


def send_one(
    client: openai.OpenAI, model: str, settings: Settings, request: dict, deadline: Deadline, started: list
) -> RowResult:
    """One request's completion. Failures become the row's `error`; they never cost other rows."""
    started.append(time.monotonic())
    try:
        raw = client.chat.completions.with_raw_response.create(model=model, **request)
    except openai.APIStatusError as err:
        return status_failure(err, model, settings.max_retries, _ms_since(started))
    except (openai.APIError, DeadlinePassed) as err:  # connection errors and timeouts, after every retry
        if isinstance(err, DeadlinePassed) or (deadline.left() or 1) <= 0:
            return RowResult([], unfinished=True, latency_ms=_ms_since(started))
        error = f"{type(err).__name__}: {getattr(err, 'message', err)}"
        return RowResult([], error=error, retries=settings.max_retries, latency_ms=_ms_since(started))
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
