"""What an engine's HTTP answer means, in one place for scoring, chat, start-up checks and downloads."""

from __future__ import annotations

from typing import Any

from nim_drum.config.layout import DEFAULT_MODEL_NAME


def is_transient(status: int) -> bool:
    """Worth retrying. The OpenAI SDK's own rule, which its client applies to every engine request
    (openai 3.52 `_base_client.py`, `_should_retry`): 408, 409, 429 and every 5xx."""
    return status in (408, 409, 429) or status >= 500


def configuration_advice(status: int, model: str) -> str | None:
    """What to fix when the engine refuses this deployment's key (401, 403) or model (404), or None."""
    if status in (401, 403):
        return ("the engine refused this deployment's credentials: set the engine_api_key credential to a key "
                "the engine accepts (for the hosted NIM API, a valid NVIDIA API key; NGC_API_KEY when the NIM "
                "downloads from NGC)")
    if status == 404:
        return (f"the engine does not serve the model {model!r}: set served_model_name to a model the engine "
                f"lists at /v1/models (with engine=external, {DEFAULT_MODEL_NAME} serves its first one), and "
                "check that base_url ends with /v1")
    return None


def error_message(body: Any, fallback: str) -> str:
    """The message of an OpenAI-style error body ({"error": {"message": ...}}), or the fallback."""
    if isinstance(body, dict):
        body = body.get("error", body)
        if isinstance(body, dict):
            return str(body.get("message", body))
    return str(body or fallback)
