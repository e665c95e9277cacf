"""Per-row results: what a failed request means for its row, the output frame, and the batch's verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass

import openai
import pandas as pd

from nim_drum.engine_answers import configuration_advice, is_transient
from nim_drum.errors import RowsFailedError
from nim_drum.serving.chat import engine_message

LISTED_FAILURES = 20
# Engine 4xx answers that are the row's own fault (a prompt longer than the context, a bad value).
ROW_FAULT_STATUSES = (400, 413, 422)


@dataclass
class RowResult:
    choices: list[str]
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    retries: int = 0
    latency_ms: int = 0
    input_fault: bool = False  # the row itself is bad (empty, too long), not the engine
    unfinished: bool = False  # left at the batch deadline; scoring gives it the deadline's error
    status: int | None = None  # the engine's HTTP status when it refused the request


def status_failure(err: openai.APIStatusError, model: str, max_retries: int, latency_ms: int) -> RowResult:
    status = err.status_code
    transient = is_transient(status)
    hint = configuration_advice(status, model)
    return RowResult(
        [], error=f"HTTP {status} from the engine: {engine_message(err)}" + (f"; {hint}" if hint else ""),
        retries=max_retries if transient else 0, latency_ms=latency_ms, input_fault=status in ROW_FAULT_STATUSES,
        status=status,
    )


def to_frame(results: list[RowResult], target: str, index: pd.Index, with_choices: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            target: [r.choices[0] if r.choices else "" for r in results],
            "finish_reason": [r.finish_reason or "" for r in results],
            "prompt_tokens": [r.prompt_tokens or 0 for r in results],
            "completion_tokens": [r.completion_tokens or 0 for r in results],
            "error": [r.error or "" for r in results],
            "latency_ms": [r.latency_ms for r in results],
            "retries": [r.retries for r in results],
        },
        index=index,
    )
    if with_choices:
        frame.insert(1, "choices", [json.dumps(r.choices, ensure_ascii=False) for r in results])
    return frame


def batch_summary(results: list[RowResult], seconds: float, deduplicated: int) -> str:
    failed = sum(1 for r in results if r.error)
    retried = sum(1 for r in results if r.retries)
    tokens = sum(r.completion_tokens or 0 for r in results)
    return (
        f"Batch scored: rows={len(results)} succeeded={len(results) - failed} retried={retried} "
        f"failed={failed} seconds={seconds:.2f} completion_tokens={tokens} "
        f"tokens/s={tokens / max(seconds, 1e-9):.1f} deduplicated={deduplicated}"
    )


def raise_for_failed_rows(results: list[RowResult]) -> None:
    failed = [(row, r) for row, r in enumerate(results) if r.error]
    if not failed:
        return
    listed = "; ".join(f"row {row}: {r.error}" for row, r in failed[:LISTED_FAILURES])
    more = f"; and {len(failed) - LISTED_FAILURES} more" if len(failed) > LISTED_FAILURES else ""
    # 422 when every failure is the input's own fault, 502 when the engine (or its configuration) failed some.
    bad_rows_only = all(r.input_fault for _, r in failed)
    advice = (
        "Fix those rows" if bad_rows_only
        else "The engine or its configuration failed them: fix what each row's error names and rerun"
    )
    raise RowsFailedError(
        f"{len(failed)} of {len(results)} rows failed (rows numbered from 0): {listed}{more}. "
        f"{advice}, or set on_row_error=record to keep the other rows' predictions.",
        422 if bad_rows_only else 502,
    )
