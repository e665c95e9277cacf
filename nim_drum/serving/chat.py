"""The chat hook: OpenAI chat completions passed through to the engine, streaming included."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import openai
from openai.resources.chat.completions import Completions

from nim_drum.config.layout import DEFAULT_MODEL_NAME
from nim_drum.engine_answers import configuration_advice, error_message
from nim_drum.errors import ClientError, EngineRefusedError, RequestError
from nim_drum.serving.limiter import EngineLimiter, Permit

log = logging.getLogger(__name__)
ROLES = ("system", "developer", "user", "assistant", "tool")
CREATE_PARAMETERS = set(inspect.signature(Completions.create).parameters) - {"self"}


def chat(params: Any, client: openai.OpenAI, served_model: str, limiter: EngineLimiter | None = None):
    """Send one chat request; a ChatCompletion, or a Stream of chunks when `stream` is true.

    With a limiter, the request waits for its turn among the engine's requests in flight (batch
    chunks included), and holds its permit until the answer, or the stream, has ended.
    """
    request = dict(_validated(params))
    request["model"] = _model_for(request.get("model"), served_model)
    permit = _permit(limiter, client)
    try:
        response = _create(client, request, served_model)
    except BaseException:
        _release(limiter, permit, 0)
        raise
    if request.get("stream"):
        return checked_stream(response, lambda tokens: _release(limiter, permit, tokens))
    _release(limiter, permit, response.usage.completion_tokens if response.usage else 0)
    return response


def _permit(limiter: EngineLimiter | None, client: openai.OpenAI) -> Permit | None:
    if limiter is None:
        return None
    wait = client.timeout if isinstance(client.timeout, (int, float)) else None
    permit = limiter.acquire(object(), timeout=wait)
    if permit is None:
        raise RequestError(
            f"The engine's {limiter.limit} requests in flight did not make room within {wait} s; retry the request.",
            503,
        )
    return permit


def _release(limiter: EngineLimiter | None, permit: Permit | None, tokens: int) -> None:
    if limiter is not None and permit is not None:
        limiter.release(permit, tokens=tokens)


def _create(client: openai.OpenAI, request: dict, served_model: str):
    known = {k: v for k, v in request.items() if k in CREATE_PARAMETERS}
    # Engine-specific fields (NIM's nvext, vLLM's guided_json, top_k, ...) travel in the body as-is.
    extra = {k: v for k, v in request.items() if k not in CREATE_PARAMETERS}
    try:
        return client.chat.completions.create(**known, extra_body=extra or None)
    except openai.APIStatusError as err:
        advice = configuration_advice(err.status_code, served_model)
        if advice:  # our configuration is wrong (its key, its model), not the request
            answer = f"The engine answered HTTP {err.status_code} ({engine_message(err)})"
            raise EngineRefusedError(f"{answer}; {advice}.") from err
        if 400 <= err.status_code < 500:
            raise ClientError(f"The engine rejected the request: {engine_message(err)}", err.status_code) from err
        raise


class StreamError:
    """An OpenAI-style error event; DRUM sends each streamed item as `data: item.to_json()`."""

    def __init__(self, message: str):
        self.message = message
        # DRUM reads .choices of every item, and refuses a stream whose first item is not a chunk (docs/drum.md).
        self.choices: list = []
        self.object = "chat.completion.chunk"

    def to_json(self, indent=None) -> str:
        return json.dumps({"error": {"message": self.message, "type": "engine_error"}}, indent=indent)


def checked_stream(stream, ended: Callable[[int], None] = lambda tokens: None) -> Iterator:
    """Pass chunks through; if the engine's stream breaks or ends before a finish_reason, say so.

    Without this a client sees a cut stream as a complete, shorter answer. The OpenAI SDK raises
    an APIError with this message when it reads the error event. `ended` gets the number of chunks
    that carried text (about one token each) once the stream is over, or closed by the client.
    """
    finished, tokens = False, 0
    try:
        for chunk in stream:
            finished = finished or any(choice.finish_reason for choice in chunk.choices)
            tokens += any(choice.delta and choice.delta.content for choice in chunk.choices)
            yield chunk
        if not finished:
            yield StreamError("The engine's stream ended before the completion finished; retry the request.")
    except Exception as err:  # noqa: BLE001 - any failure mid-stream must reach the client as an event
        log.warning("The engine's stream broke: %s", type(err).__name__)
        yield StreamError("The engine's stream ended before the completion finished; retry the request.")
    finally:
        ended(tokens)


def _validated(params: Any) -> dict:
    if not isinstance(params, dict):
        raise ClientError("The request body must be a JSON object with a 'messages' list.")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ClientError("'messages' is missing or empty; send at least one {role, content} message.")
    for position, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise ClientError(
                f"messages[{position}] has role {role!r}; allowed roles: {', '.join(ROLES)}."
            )
    return params


def _model_for(requested: Any, served_model: str) -> str:
    if not requested or requested in (DEFAULT_MODEL_NAME, served_model):
        return served_model
    raise ClientError(
        f"Model {requested!r} is not served here; use {served_model!r} or {DEFAULT_MODEL_NAME!r}, "
        "or leave 'model' out.",
        404,
    )


def engine_message(err: openai.APIStatusError) -> str:
    return error_message(err.body, err.message)
