"""Runtime parameters, read once into one typed Settings object that pydantic validates.

model-metadata.yaml is the single source of names, types, defaults and ranges. Values come from
DRUM's `MLOPS_RUNTIME_PARAM_<name>` variables when set, otherwise from the metadata defaults: DRUM
applies those defaults only when it was given a values file (docs/drum.md), so we apply them here too.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from nim_drum.config.layout import METADATA_FILE
from nim_drum.config.runtime_params import Credential, api_token, credential, number_text, raw_value, read_definitions
from nim_drum.config.values import (
    ADAPTER_NAME_HELP,
    adapter_name_problem,
    health_route,
    port_number,
    response_format_payload,
    stop_sequences,
    template_columns,
)
from nim_drum.errors import ConfigError
from nim_drum.redaction import redact

Engine = Literal["embedded", "vllm", "external"]
RowErrorMode = Literal["record", "fail"]
NimLogLevel = Literal["DEFAULT", "TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
ArtifactRoute = Literal["cache", "model-repo"]
# DRUM 1.18.1 gunicorn.conf.py uses the value only when it is one of these, and sync otherwise.
WorkerClass = Literal["sync", "gevent"]
# Credentials kept whole (any credentialType), not reduced to an api_token.
CREDENTIAL_OBJECT_PARAMS = {"model_artifact_credential"}
# String parameters whose whitespace is their value: a stop of "\n" is a newline, not "unset".
WHITESPACE_KEPT = {"stop"}
SECRET = Field(default=None, repr=False)


class Settings(BaseModel):
    """Every runtime parameter this environment reads, by its metadata name (lower-cased)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    prompt_column_name: str
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    max_concurrency: int
    adaptive_concurrency: bool
    request_timeout: float
    max_retries: int
    on_row_error: RowErrorMode
    engine: Engine
    engine_port: int
    served_model_name: str
    nim_log_level: NimLogLevel
    drum_client_request_timeout: int = 600
    drum_gunicorn_worker_class: WorkerClass = "gevent"
    drum_worker_connections: int = 64
    prompt_template: str | None = None
    response_format: str | None = None
    batch_deadline_seconds: float | None = None
    system_prompt: str | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    base_url: str | None = Field(default=None, repr=False)  # may carry user:password@
    nim_model_profile: str | None = None
    nim_max_model_len: int | None = None
    engine_api_key: str | None = SECRET
    ngc_api_key: str | None = SECRET
    verifyssl: bool = True
    model_artifact_uri: str | None = Field(default=None, repr=False)
    model_artifact_route: ArtifactRoute = "model-repo"
    model_artifact_sha256: str | None = None
    model_artifact_size_gb: float | None = None
    model_artifact_credential: Credential | None = SECRET
    artifact_s3_endpoint_url: str | None = None
    lora_artifact_uri: str | None = Field(default=None, repr=False)
    model: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    huggingfacetoken: str | None = SECRET
    vllm_python: str | None = None
    # LoRA adapters per deployment and per row, and whole conversations per row (docs/nim.md, "LoRA adapters").
    adapter: str | None = None
    adapter_column_name: str | None = None
    messages_column_name: str | None = None
    # DRUM's NIM predictor reads these itself (docs/drum.md, "DRUM's NIM predictor").
    dr_nim_health_route: str = "/v1/health/ready"
    dr_nim_server_host: str | None = None
    dr_nim_server_port: int | None = None
    drum_openai_client_timeout: int = 540
    max_watchdog_restarts: int = 10

    @classmethod
    def load(cls, code_dir: str | os.PathLike, environ: Mapping[str, str] | None = None) -> Settings:
        """Read model-metadata.yaml in code_dir, overlay DRUM's environment, and validate."""
        definitions = read_definitions(Path(code_dir) / METADATA_FILE)
        environ = os.environ if environ is None else environ
        declared = {name.lower(): name for name in definitions}
        missing = sorted(set(cls.model_fields) - declared.keys())
        if missing:
            raise ConfigError(
                f"{METADATA_FILE} does not declare {missing}; restore them from this "
                "environment's model-metadata.yaml."
            )
        values = {
            field: raw_value(name, definitions[name], environ)
            for field, name in declared.items() if field in cls.model_fields
        }
        try:
            return cls.model_validate(values, context={"definitions": definitions, "names": declared})
        except pydantic.ValidationError as err:
            raise ConfigError(_explained(err, definitions, declared)) from err  # pydantic hides the inputs

    @field_validator("*", mode="before")
    @classmethod
    def _typed(cls, raw: Any, info: ValidationInfo) -> Any:
        name = _metadata_name(info)
        kind = info.context["definitions"][name]["type"] if info.context else "string"
        if isinstance(raw, str) and not raw.strip() and kind != "credential" and name not in WHITESPACE_KEPT:
            return None
        if raw is None:
            return None
        if kind == "credential":
            return credential(name, raw) if name in CREDENTIAL_OBJECT_PARAMS else api_token(name, raw)
        if kind == "numeric" and isinstance(raw, str):
            return number_text(raw)
        return raw

    @field_validator("*", mode="after")
    @classmethod
    def _in_range(cls, value: Any, info: ValidationInfo) -> Any:
        if not info.context or isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        name = _metadata_name(info)
        definition = info.context["definitions"][name]
        low, high = definition.get("minValue"), definition.get("maxValue")
        if (low is not None and value < low) or (high is not None and value > high):
            allowed = _allowed(cls, info.field_name or name, definition)
            raise ConfigError(f"Runtime parameter '{name}' is {value!r}; allowed: {allowed}.")
        return value

    @field_validator("nim_log_level", mode="before")
    @classmethod
    def _upper(cls, raw: Any) -> Any:
        return raw.upper() if isinstance(raw, str) else raw

    @field_validator("drum_gunicorn_worker_class", mode="before")
    @classmethod
    def _lower(cls, raw: Any) -> Any:
        return raw.lower() if isinstance(raw, str) else raw  # as DRUM's gunicorn.conf.py reads it

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, raw: Any) -> Any:
        return stop_sequences(raw) if isinstance(raw, str) else raw

    @field_validator("prompt_template")
    @classmethod
    def _template(cls, template: str | None) -> str | None:
        if template is not None:
            template_columns(template)
        return template

    @field_validator("response_format")
    @classmethod
    def _response_format(cls, raw: str | None) -> str | None:
        if raw is not None:
            response_format_payload(raw)
        return raw

    @field_validator("adapter", mode="before")
    @classmethod
    def _adapter(cls, raw: Any) -> Any:
        name = raw.strip() if isinstance(raw, str) else raw
        problem = adapter_name_problem(name) if isinstance(name, str) and name else None
        if problem:
            raise ConfigError(f"Runtime parameter 'adapter' is {name[:80]!r}, not an adapter name: {problem}; "
                              f"{ADAPTER_NAME_HELP}.")
        return name

    @field_validator("model_artifact_sha256")
    @classmethod
    def _sha256(cls, digest: str | None) -> str | None:
        if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest.strip()):
            raise ConfigError(
                f"Runtime parameter 'model_artifact_sha256' is {digest!r}; allowed: 64 hexadecimal "
                "characters, as printed by `sha256sum FILE`."
            )
        return digest

    @field_validator("dr_nim_health_route")
    @classmethod
    def _route(cls, route: str | None) -> str:
        return health_route(route)

    @field_validator("dr_nim_server_port", mode="before")
    @classmethod
    def _port(cls, raw: Any) -> int | None:
        return port_number(raw)

    @model_validator(mode="after")
    def _client_timeout_under_request_timeout(self) -> Settings:
        request_timeout = self.drum_client_request_timeout
        if request_timeout and self.drum_openai_client_timeout >= request_timeout:
            raise ConfigError(
                f"Runtime parameter 'DRUM_OPENAI_CLIENT_TIMEOUT' is {self.drum_openai_client_timeout}; "
                f"allowed: under DRUM_CLIENT_REQUEST_TIMEOUT ({request_timeout}), or DRUM gives up on a "
                "request whose chat call goes on running in NIM. Lower it, or raise DRUM_CLIENT_REQUEST_TIMEOUT."
            )
        return self

    @model_validator(mode="after")
    def _external_needs_url(self) -> Settings:
        if self.engine == "external" and not (self.base_url or "").startswith(("http://", "https://")):
            raise ConfigError(
                f"Runtime parameter 'base_url' is {redact(self.base_url or '')!r}; engine=external needs an "
                "http(s) URL of an OpenAI-compatible server, for example http://nim:8000/v1."
            )
        return self


def _metadata_name(info: ValidationInfo) -> str:
    field = info.field_name or ""
    return info.context["names"].get(field, field) if info.context else field


def _explained(err: pydantic.ValidationError, definitions: dict[str, dict], names: dict[str, str]) -> str:
    first = err.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    name = names.get(field, field)
    allowed = _allowed(Settings, field, definitions.get(name, {}))
    return f"Runtime parameter '{name}' is {first.get('input')!r}; allowed: {allowed}."


def _allowed(model: type[BaseModel], field: str, definition: dict) -> str:
    kind = model.model_fields[field].annotation
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is Literal:
        return ", ".join(typing.get_args(kind))
    low, high = definition.get("minValue"), definition.get("maxValue")
    if kind is int:
        return f"a whole number from {low} to {high}"
    if kind is float:
        return f"a number from {low} to {high}"
    if kind is bool:
        return "true or false"
    return f"a {definition.get('type', 'string')} value"


