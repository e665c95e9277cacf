"""The external engine: an OpenAI-compatible server we do not run (a NIM, vLLM, the hosted NIM API)."""

from __future__ import annotations

import logging

import requests

from nim_drum.config.layout import DEFAULT_MODEL_NAME
from nim_drum.config.settings import Settings
from nim_drum.engine_answers import configuration_advice
from nim_drum.engines.handle import EngineHandle
from nim_drum.errors import EngineError
from nim_drum.redaction import redact, redacted_cause

log = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 10


def connect_external(settings: Settings) -> EngineHandle:
    """Point at an OpenAI-compatible server we do not run, after checking that it answers."""
    base_url = (settings.base_url or "").rstrip("/")
    shown = redact(base_url)  # a base_url may carry user:password@ or a signed query
    log.info("Engine: external OpenAI-compatible server at %s", shown)
    headers = {"Authorization": f"Bearer {settings.engine_api_key}"} if settings.engine_api_key else {}
    try:
        response = requests.get(f"{base_url}/models", headers=headers, timeout=PROBE_TIMEOUT_SECONDS)
    except requests.RequestException as err:
        raise EngineError(
            f"base_url {shown} cannot be reached ({type(err).__name__}); check the URL and that "
            "the server is running and reachable from this container."
        ) from redacted_cause(err)
    if response.status_code in (401, 403):
        advice = configuration_advice(response.status_code, settings.served_model_name)
        raise EngineError(f"base_url {shown} answered HTTP {response.status_code}; {advice}.")
    if response.status_code != 200:
        raise EngineError(
            f"base_url {shown}/models answered HTTP {response.status_code}; expected an "
            "OpenAI-compatible server (a NIM, vLLM or llama-server), with '/v1' at the end of the URL."
        )
    return EngineHandle("external", base_url, _model_name(settings, response), settings.engine_api_key)


def _model_name(settings: Settings, models_response: requests.Response) -> str:
    # Like DRUM's sidecar mode: with no name configured, serve the upstream's first model.
    if settings.served_model_name != DEFAULT_MODEL_NAME:
        return settings.served_model_name
    models = models_response.json().get("data") or [{"id": DEFAULT_MODEL_NAME}]
    return models[0]["id"]
