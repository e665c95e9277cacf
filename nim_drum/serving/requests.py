"""The chat requests a batch sends: each row's body, and which rows share one when they are deterministic."""

from __future__ import annotations

import json
from typing import Any

from nim_drum.config.settings import Settings
from nim_drum.config.values import response_format_payload
from nim_drum.serving.prompts import messages_for


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


def distinct_requests(texts: list[str | None], settings: Settings) -> tuple[dict[str, dict], dict[str, list[int]]]:
    """The requests to send, by key, and the rows each one answers.

    Deterministic requests are keyed by their whole body (system prompt and template included), so
    identical ones are sent once; otherwise every row is its own request.
    """
    requests: dict[str, dict] = {}
    rows_of: dict[str, list[int]] = {}
    for row, text in enumerate(texts):
        if text is None:
            continue
        request = {"messages": messages_for(settings.system_prompt, text), **sampling(settings)}
        key = json.dumps(request, sort_keys=True) if deterministic(settings) else str(row)
        requests.setdefault(key, request)
        rows_of.setdefault(key, []).append(row)
    return requests, rows_of
