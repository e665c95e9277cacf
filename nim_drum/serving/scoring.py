"""Batch scoring: one chat completion per row, sent concurrently, returned in row order.

Transient failures (429, 5xx, connection errors, timeouts) are retried by the OpenAI client with
exponential backoff and jitter, honouring Retry-After, up to `max_retries`. A row that still fails
is recorded in the `error` column, or, with `on_row_error=fail`, fails the request.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import openai
import pandas as pd

from nim_drum.serving.chat import engine_message
from nim_drum.errors import ClientError, RowsFailedError
from nim_drum.serving.settings import Settings

log = logging.getLogger(__name__)

# DRUM names the prediction column after the deployment's target; locally we fall back to this.
DEFAULT_TARGET_NAME = "completion"
LISTED_FAILURES = 20


@dataclass
class RowResult:
    choices: list[str]
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    retries: int = 0
    input_fault: bool = False  # the row itself is bad (empty, too long), not the engine


def score_frame(data: pd.DataFrame, client: openai.OpenAI, model: str, settings: Settings) -> pd.DataFrame:
    """Complete every row's prompt; the output has exactly one row per input row, in order."""
    prompts = prompt_column(data, settings.prompt_column_name)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="score") as pool:
        results = list(pool.map(lambda prompt: complete_row(client, model, settings, prompt), prompts))
    log.info(batch_summary(results, time.monotonic() - started))
    if settings.on_row_error == "fail":
        raise_for_failed_rows(results)
    frame = to_frame(results, target_name(), data.index, with_choices=settings.n > 1)
    if len(frame) != len(data):  # DRUM does not check this, and a lost row is a silent error.
        raise AssertionError(f"scored {len(frame)} rows for {len(data)} input rows")
    return frame


def target_name() -> str:
    return os.environ.get("TARGET_NAME") or DEFAULT_TARGET_NAME


def prompt_column(data: pd.DataFrame, column: str) -> list:
    if column not in data.columns:
        present = ", ".join(map(repr, map(str, data.columns))) or "none"
        raise ClientError(
            f"The input has no prompt column '{column}'; columns present: {present}. Rename the "
            "column, or set the prompt_column_name runtime parameter to the column that holds prompts."
        )
    return data[column].tolist()


def messages_for(settings: Settings, prompt: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []
    return messages + [{"role": "user", "content": prompt}]


def complete_row(client: openai.OpenAI, model: str, settings: Settings, prompt: object) -> RowResult:
    """One row's completion. Failures become the row's `error`; they never cost other rows."""
    text = _prompt_text(prompt)
    if text is None:
        return RowResult([], error="empty prompt: the prompt cell is empty, blank or missing", input_fault=True)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=messages_for(settings, text), **settings.sampling()
        )
    except openai.APIStatusError as err:
        transient = err.status_code in (408, 409, 429) or err.status_code >= 500
        return RowResult(
            [], error=f"HTTP {err.status_code} from the engine: {engine_message(err)}",
            retries=settings.max_retries if transient else 0, input_fault=not transient,
        )
    except openai.APIError as err:  # connection errors and timeouts, after every retry
        return RowResult([], error=f"{type(err).__name__}: {err.message}", retries=settings.max_retries)
    response = raw.parse()
    usage = response.usage
    return RowResult(
        choices=[choice.message.content or "" for choice in response.choices],
        finish_reason=response.choices[0].finish_reason if response.choices else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        retries=raw.retries_taken,
    )


def to_frame(results: list[RowResult], target: str, index: pd.Index, with_choices: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            target: [r.choices[0] if r.choices else "" for r in results],
            "finish_reason": [r.finish_reason or "" for r in results],
            "prompt_tokens": [r.prompt_tokens or 0 for r in results],
            "completion_tokens": [r.completion_tokens or 0 for r in results],
            "error": [r.error or "" for r in results],
        },
        index=index,
    )
    if with_choices:
        frame.insert(1, "choices", [json.dumps(r.choices, ensure_ascii=False) for r in results])
    return frame


def batch_summary(results: list[RowResult], seconds: float) -> str:
    failed = sum(1 for r in results if r.error)
    retried = sum(1 for r in results if r.retries)
    tokens = sum(r.completion_tokens or 0 for r in results)
    return (
        f"Batch scored: rows={len(results)} succeeded={len(results) - failed} retried={retried} "
        f"failed={failed} seconds={seconds:.2f} completion_tokens={tokens} "
        f"tokens/s={tokens / max(seconds, 1e-9):.1f}"
    )


def raise_for_failed_rows(results: list[RowResult]) -> None:
    failed = [(row, r) for row, r in enumerate(results) if r.error]
    if not failed:
        return
    listed = "; ".join(f"row {row}: {r.error}" for row, r in failed[:LISTED_FAILURES])
    more = f"; and {len(failed) - LISTED_FAILURES} more" if len(failed) > LISTED_FAILURES else ""
    # 422 when every failure is the input's own fault, 502 when the engine failed some rows.
    status = 422 if all(r.input_fault for _, r in failed) else 502
    raise RowsFailedError(
        f"{len(failed)} of {len(results)} rows failed (rows numbered from 0): {listed}{more}. "
        "Fix those rows, or set on_row_error=record to keep the other rows' predictions.",
        status,
    )


def _prompt_text(prompt: object) -> str | None:
    if prompt is None or (isinstance(prompt, float) and math.isnan(prompt)):
        return None
    text = str(prompt)
    return text if text.strip() else None
