"""The engine handle: an OpenAI-compatible endpoint and the OpenAI client that reaches it."""

from __future__ import annotations

from dataclasses import dataclass, field

import openai

from nim_drum.config.settings import Settings


@dataclass(frozen=True)
class EngineHandle:
    """An OpenAI-compatible endpoint; `load_model` returns one, and `score` and `chat` use it."""

    kind: str
    base_url: str = field(repr=False)  # an external one may carry user:password@
    model: str
    api_key: str | None = field(default=None, repr=False)
    log_file: str | None = None
    slots: int | None = None  # requests the engine runs at once (llama-server's --parallel), when fixed

    def client(self, settings: Settings) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url,
            # The embedded engine needs no key, but the client refuses to start without one.
            api_key=self.api_key or "not-needed",
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
        )
