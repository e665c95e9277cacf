"""Engine handles: where chat completions come from, and the OpenAI client that reaches them."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import openai
import requests

from nim_drum.errors import EngineError
from nim_drum.settings import DEFAULT_MODEL_NAME, Settings

log = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class EngineHandle:
    """An OpenAI-compatible endpoint; `load_model` returns one, and `score` and `chat` use it."""

    kind: str
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    log_file: str | None = None

    def client(self, settings: Settings) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url,
            # The embedded engine needs no key, but the client refuses to start without one.
            api_key=self.api_key or "not-needed",
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
        )


def open_engine(settings: Settings, code_dir: str | os.PathLike) -> EngineHandle:
    """Start or connect to the engine that `settings.engine` names."""
    if settings.engine == "external":
        return connect_external(settings)
    if settings.engine == "vllm":
        from nim_drum.vllm_engine import start_vllm

        return start_vllm(settings, code_dir)
    from nim_drum.embedded import start_embedded

    return start_embedded(settings, code_dir)


def connect_external(settings: Settings) -> EngineHandle:
    """Point at an OpenAI-compatible server we do not run, after checking that it answers."""
    base_url = settings.base_url.rstrip("/")
    log.info("Engine: external OpenAI-compatible server at %s", base_url)
    headers = {"Authorization": f"Bearer {settings.engine_api_key}"} if settings.engine_api_key else {}
    try:
        response = requests.get(f"{base_url}/models", headers=headers, timeout=PROBE_TIMEOUT_SECONDS)
    except requests.RequestException as err:
        raise EngineError(
            f"base_url {base_url} cannot be reached ({type(err).__name__}); check the URL and that "
            "the server is running and reachable from this container."
        ) from None
    if response.status_code in (401, 403):
        raise EngineError(
            f"base_url {base_url} refused the API key (HTTP {response.status_code}); set the "
            "engine_api_key credential to a valid key."
        )
    if response.status_code != 200:
        raise EngineError(
            f"base_url {base_url}/models answered HTTP {response.status_code}; expected an "
            "OpenAI-compatible server (a NIM, vLLM or llama-server), with '/v1' at the end of the URL."
        )
    return EngineHandle("external", base_url, _model_name(settings, response), settings.engine_api_key)


def _model_name(settings: Settings, models_response: requests.Response) -> str:
    # Like DRUM's sidecar mode: with no name configured, serve the upstream's first model.
    if settings.served_model_name != DEFAULT_MODEL_NAME:
        return settings.served_model_name
    models = models_response.json().get("data") or [{"id": DEFAULT_MODEL_NAME}]
    return models[0]["id"]
