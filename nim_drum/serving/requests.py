"""The chat requests a batch sends: each row's body (its messages and its adapter), and which rows share one
when they are deterministic."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import openai
import pandas as pd

from nim_drum.config.settings import Settings
from nim_drum.config.values import ADAPTER_NAME_HELP, adapter_name_problem, response_format_payload
from nim_drum.errors import ClientError
from nim_drum.serving.prompts import (
    MAX_CELL_CHARS,
    cell_text,
    columns_present,
    conversation,
    conversation_cells,
    messages_for,
    row_prompts,
)
from nim_drum.serving.results import RowResult

log = logging.getLogger(__name__)


@dataclass
class BatchRows:
    """What each input row sends, or why it sends nothing (its row error)."""

    messages: list[list[dict] | None]
    models: list[str | None]  # the request's `model`: an adapter (or the base, by name); None: the served model
    problems: list[str | None]
    adapters: list[str] | None  # the output's `adapter` column; None when no adapter parameter is set

    def input_error(self, row: int) -> RowResult:
        return RowResult([], error=self.problems[row], input_fault=True)

    def unsendable(self) -> int:
        return sum(1 for messages in self.messages if messages is None)


def batch_rows(data: pd.DataFrame, settings: Settings, client: openai.OpenAI) -> BatchRows:
    """Each row's messages (its conversation, or its prompt) and adapter; a ClientError for a missing column.

    Adapters are checked against the engine's /v1/models (asked once per batch, and only when a row
    names one: NIM can add adapters while it runs), so an unknown one is its rows' error.
    """
    messages, problems = _row_messages(data, settings)
    models: list[str | None] = [None] * len(data)
    adapters = row_adapters(data, settings)
    if adapters is not None:
        served = served_model_ids(client) if any(adapters) else None
        for row, name in enumerate(adapters):
            problem = adapter_problem(name, settings.adapter_column_name, served) if name else None
            if problem and messages[row] is not None:
                messages[row], problems[row] = None, problem
            models[row] = name or None
    return BatchRows(messages, models, problems, adapters)


def _row_messages(data: pd.DataFrame, settings: Settings) -> tuple[list[list[dict] | None], list[str | None]]:
    column = settings.messages_column_name
    cells = conversation_cells(data, column) if column else [None] * len(data)
    # With a messages column, rows may carry conversations only: the prompt column is then optional.
    prompt_optional = column is not None and settings.prompt_template is None
    if prompt_optional and settings.prompt_column_name not in data.columns:
        texts: list[str | None] = [None] * len(data)
        empty = f"empty conversation: the cell in column {column!r} is empty, and the input has no prompt column"
    else:
        prompts = row_prompts(data, settings.prompt_template, settings.prompt_column_name)
        texts = prompts.texts
        empty = prompts.empty_reason + (f", and so is the conversation in column {column!r}" if column else "")
    messages: list[list[dict] | None] = []
    problems: list[str | None] = []
    for cell, text in zip(cells, texts, strict=True):
        found = conversation(cell, column, settings.system_prompt) if column else None
        if found is not None:
            messages.append(found.messages)
            problems.append(found.problem)
        elif text is None:
            messages.append(None)
            problems.append(empty)
        elif len(text) > MAX_CELL_CHARS:
            messages.append(None)
            problems.append(f"the prompt is {len(text):,} characters; at most {MAX_CELL_CHARS:,} are sent")
        else:
            messages.append(messages_for(settings.system_prompt, text))
            problems.append(None)
    return messages, problems


def row_adapters(data: pd.DataFrame, settings: Settings) -> list[str] | None:
    """Each row's adapter name ('' for the base model); None when neither adapter parameter is set."""
    default = settings.adapter or ""
    column = settings.adapter_column_name
    if column is None:
        return None if not default else [default] * len(data)
    if column not in data.columns:
        raise ClientError(
            f"The input has no adapter column '{column}'; columns present: {columns_present(data)}. Add the "
            "column (an empty cell means the adapter runtime parameter, or the base model), or set the "
            "adapter_column_name runtime parameter to the column that names each row's adapter."
        )
    return [(cell_text(cell) or "").strip() or default for cell in data[column].tolist()]


def served_model_ids(client: openai.OpenAI) -> list[str] | None:
    """The models and adapters the engine serves; None when it cannot say (its requests then tell)."""
    try:
        return [model.id for model in client.models.list()]
    except openai.OpenAIError as err:
        log.warning("The engine's /v1/models could not be listed (%s); adapters are not checked", type(err).__name__)
        return None


def adapter_problem(name: str, column: str | None, served: list[str] | None) -> str | None:
    where = f"adapter {name[:80]!r}" + (f" (column {column!r})" if column else "")
    problem = adapter_name_problem(name)
    if problem:
        return f"{where} is not an adapter name: {problem}; {ADAPTER_NAME_HELP}"
    if served is not None and name not in served:
        return f"{where} is not served by the engine; its /v1/models lists: {', '.join(served) or 'nothing'}"
    return None


def sampling(settings: Settings) -> dict[str, Any]:
    """The chat-completion arguments that every scoring request carries."""
    params: dict[str, Any] = {
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "n": settings.n,
    }
    if settings.stop:
        params["stop"] = list(settings.stop)
    if settings.seed is not None:
        params["seed"] = settings.seed
    if settings.response_format:
        params["response_format"] = response_format_payload(settings.response_format)
    return params


def deterministic(settings: Settings) -> bool:
    """Identical requests get identical answers: greedy or seeded sampling, one choice."""
    return (settings.temperature == 0 or settings.seed is not None) and settings.n == 1


def distinct_requests(batch: BatchRows, settings: Settings) -> tuple[dict[str, dict], dict[str, list[int]]]:
    """The requests to send, by key, and the rows each one answers.

    Deterministic requests are keyed by their whole body (messages, system prompt, template and
    adapter included), so identical ones are sent once; otherwise every row is its own request.
    """
    requests: dict[str, dict] = {}
    rows_of: dict[str, list[int]] = {}
    for row, messages in enumerate(batch.messages):
        if messages is None:
            continue
        request = {"messages": messages, **sampling(settings)}
        if batch.models[row]:
            request["model"] = batch.models[row]
        key = json.dumps(request, sort_keys=True) if deterministic(settings) else str(row)
        requests.setdefault(key, request)
        rows_of.setdefault(key, []).append(row)
    return requests, rows_of
