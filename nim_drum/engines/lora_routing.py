"""Adapters selected by `model` on llama-server, as NIM and vLLM select them.

llama-server serves the model its --alias names whatever a request's `model` says, applies GGUF
adapters by their position in its --lora list through a per-request `lora` field
(`[{"id": 0, "scale": 1.0}]`), applies every adapter at its --lora scale (1) to a request without
that field, and lists only the base model at /v1/models (llama.cpp tools/server/README.md,
docs/engines.md). This transport, under the OpenAI client that talks to the embedded engine, makes
it look like NIM: every completion request goes out as the base model with an explicit `lora` list,
the named adapter at scale 1 and the others at 0 (all 0 for the base model), and /v1/models lists
the adapters too. Streams and every other request pass through untouched.
"""

from __future__ import annotations

import json

import httpx2 as httpx  # the HTTP library of the openai client in requirements.lock
import openai
from openai._constants import DEFAULT_CONNECTION_LIMITS

COMPLETION_PATHS = ("/chat/completions", "/completions")


class LoraByModel(httpx.BaseTransport):
    def __init__(self, base_model: str, adapters: tuple[str, ...]):
        self.base_model = base_model
        self.adapters = adapters
        self.inner = httpx.HTTPTransport(limits=DEFAULT_CONNECTION_LIMITS)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(COMPLETION_PATHS):
            request = self._routed(request)
        response = self.inner.handle_request(request)
        if request.method == "GET" and request.url.path.endswith("/models") and response.status_code == 200:
            return self._listed(response, request)
        return response

    def close(self) -> None:
        self.inner.close()

    def _routed(self, request: httpx.Request) -> httpx.Request:
        try:
            body = json.loads(request.read())
        except ValueError:
            return request  # not ours to mend: the engine answers it
        if not isinstance(body, dict) or "lora" in body:
            return request  # a caller's own `lora` field is kept
        model = body.get("model")
        if model in self.adapters:
            body["model"] = self.base_model
        body["lora"] = [{"id": i, "scale": 1.0 if name == model else 0.0} for i, name in enumerate(self.adapters)]
        return httpx.Request(request.method, request.url, headers=_without_length(request.headers),
                             content=json.dumps(body).encode(), extensions=request.extensions)

    def _listed(self, response: httpx.Response, request: httpx.Request) -> httpx.Response:
        try:
            listing = json.loads(response.read())
            listing["data"] += [{"id": name, "object": "model", "created": 0, "owned_by": "llama-server --lora"}
                                for name in self.adapters]
        except (ValueError, KeyError, TypeError):
            return response
        return httpx.Response(response.status_code, headers=_without_length(response.headers),
                              content=json.dumps(listing).encode(), request=request)


def _without_length(headers: httpx.Headers) -> httpx.Headers:
    kept = httpx.Headers(headers)
    for name in ("content-length", "content-encoding", "transfer-encoding"):
        kept.pop(name, None)
    return kept


def lora_http_client(base_model: str, adapters: tuple[str, ...]) -> httpx.Client:
    return openai.DefaultHttpxClient(transport=LoraByModel(base_model, adapters))
