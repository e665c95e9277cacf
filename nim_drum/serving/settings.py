"""Runtime parameters, read once into one typed, validated Settings object.

model-metadata.yaml is the single source of names, types, defaults and ranges. Values come from
DRUM's `MLOPS_RUNTIME_PARAM_<name>` variables when set, otherwise from the metadata defaults: DRUM
applies those defaults only when it was given a values file (docs/drum.md), so we apply them here too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from nim_drum.errors import ConfigError
from nim_drum.redaction import redact
from nim_drum.serving.prompts import template_columns
from nim_drum.serving.structured import response_format_payload

METADATA_FILE = "model-metadata.yaml"
ENV_PREFIX = "MLOPS_RUNTIME_PARAM_"
ENGINES = ("embedded", "vllm", "external")
# DRUM's name for "whatever model this deployment serves" (BaseOpenAiGpuPredictor.DEFAULT_MODEL_NAME).
DEFAULT_MODEL_NAME = "datarobot-deployed-llm"
ROW_ERROR_MODES = ("record", "fail")
NIM_LOG_LEVELS = ("DEFAULT", "TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ARTIFACT_ROUTES = ("cache", "model-repo")
# Credentials kept whole (any credentialType), not reduced to an api_token.
CREDENTIAL_OBJECT_PARAMS = {"model_artifact_credential"}
INTEGER_PARAMS = {
    "max_tokens", "n", "seed", "max_concurrency", "max_retries", "engine_port", "NIM_MAX_MODEL_LEN",
    "max_model_len", "DRUM_CLIENT_REQUEST_TIMEOUT",
}


def _secret() -> Any:
    return field(default=None, repr=False)


@dataclass(frozen=True)
class Credential:
    """A DataRobot credential of any type (api_token, s3, basic); every field is a secret."""

    kind: str
    fields: tuple[tuple[str, str], ...] = field(repr=False)

    def get(self, key: str) -> str | None:
        return dict(self.fields).get(key)


@dataclass(frozen=True)
class Settings:
    """Every runtime parameter this environment reads, by its metadata name (lower-cased)."""

    prompt_column_name: str
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    max_concurrency: int
    request_timeout: float
    max_retries: int
    on_row_error: str
    engine: str
    engine_port: int
    served_model_name: str
    nim_log_level: str
    drum_client_request_timeout: int = 600
    prompt_template: str | None = None
    response_format: str | None = None
    batch_deadline_seconds: float | None = None
    system_prompt: str | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    base_url: str | None = field(default=None, repr=False)  # may carry user:password@
    nim_model_profile: str | None = None
    nim_max_model_len: int | None = None
    engine_api_key: str | None = _secret()
    ngc_api_key: str | None = _secret()
    verifyssl: bool = True
    model_artifact_uri: str | None = field(default=None, repr=False)
    model_artifact_route: str = "model-repo"
    model_artifact_sha256: str | None = None
    model_artifact_size_gb: float | None = None
    model_artifact_credential: Credential | None = _secret()
    artifact_s3_endpoint_url: str | None = None
    lora_artifact_uri: str | None = field(default=None, repr=False)
    model: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    huggingfacetoken: str | None = _secret()
    vllm_python: str | None = None

    @classmethod
    def load(cls, code_dir: str | os.PathLike, environ: Mapping[str, str] | None = None) -> Settings:
        """Read model-metadata.yaml in code_dir, overlay DRUM's environment, and validate."""
        definitions = read_definitions(Path(code_dir) / METADATA_FILE)
        environ = os.environ if environ is None else environ
        names = {f.name for f in dataclasses.fields(cls)}
        values = {}
        for name, definition in definitions.items():
            if name.lower() in names:
                values[name.lower()] = _coerce(name, definition, _raw_value(name, definition, environ))
        missing = names - values.keys()
        if missing:
            raise ConfigError(
                f"{METADATA_FILE} does not declare {sorted(missing)}; restore them from this "
                "environment's model-metadata.yaml."
            )
        return _checked(cls(**values))

    def sampling(self) -> dict[str, Any]:
        """The chat-completion arguments that every scoring request carries."""
        params: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "n": self.n,
        }
        if self.stop:
            params["stop"] = list(self.stop)
        if self.seed is not None:
            params["seed"] = self.seed
        if self.response_format:
            params["response_format"] = response_format_payload(self.response_format)
        return params

    def deterministic(self) -> bool:
        """Identical requests get identical answers: greedy or seeded sampling, one choice."""
        return (self.temperature == 0 or self.seed is not None) and self.n == 1


def read_definitions(path: Path) -> dict[str, dict]:
    try:
        metadata = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path} is missing; copy model-metadata.yaml next to custom.py.") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    return {d["fieldName"]: d for d in metadata.get("runtimeParameterDefinitions") or []}


def _raw_value(name: str, definition: dict, environ: Mapping[str, str]) -> Any:
    env_name = ENV_PREFIX + name
    if env_name not in environ:
        return definition.get("defaultValue")
    try:
        envelope = json.loads(environ[env_name])
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"Runtime parameter '{name}': {env_name} is not JSON; expected "
            f'{{"type": "{definition["type"]}", "payload": ...}}.'
        ) from err
    if not isinstance(envelope, dict) or "payload" not in envelope:
        raise ConfigError(
            f"Runtime parameter '{name}': {env_name} must be an object with a 'payload' key."
        )
    return envelope["payload"]


def _coerce(name: str, definition: dict, raw: Any) -> Any:
    kind = definition["type"]
    if raw is None or (isinstance(raw, str) and not raw.strip() and kind != "credential"):
        return None
    if kind == "numeric":
        return _number(name, definition, raw)
    if kind == "boolean":
        return _boolean(name, raw)
    if kind == "credential" and name in CREDENTIAL_OBJECT_PARAMS:
        return _credential(name, raw)
    if kind == "credential":
        return _api_token(name, raw)
    return str(raw)


def _number(name: str, definition: dict, raw: Any) -> int | float:
    low, high = definition.get("minValue"), definition.get("maxValue")
    allowed = f"a number from {low} to {high}"
    if name in INTEGER_PARAMS:
        allowed = f"a whole number from {low} to {high}"
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    in_range = (low is None or value >= low) and (high is None or value <= high)
    if math.isnan(value) or not in_range or (name in INTEGER_PARAMS and not value.is_integer()):
        raise ConfigError(f"Runtime parameter '{name}' is {raw!r}; allowed: {allowed}.")
    return int(value) if name in INTEGER_PARAMS else value


def _boolean(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in ("true", "1", "yes"):
        return True
    if str(raw).lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"Runtime parameter '{name}' is {raw!r}; allowed: true or false.")


def _api_token(name: str, raw: Any) -> str:
    # The value is a secret: messages describe its shape, never its content.
    if isinstance(raw, dict) and isinstance(raw.get("apiToken"), str) and raw["apiToken"]:
        return raw["apiToken"]
    shape = f"an object with keys {sorted(raw)}" if isinstance(raw, dict) else type(raw).__name__
    raise ConfigError(
        f"Runtime parameter '{name}' is {shape}; expected an api_token credential: "
        "{credentialType: api_token, apiToken: <key>}."
    )


def _credential(name: str, raw: Any) -> Credential:
    if isinstance(raw, dict) and isinstance(raw.get("credentialType"), str):
        fields = tuple(sorted((k, str(v)) for k, v in raw.items() if k != "credentialType" and v is not None))
        return Credential(raw["credentialType"], fields)
    raise ConfigError(
        f"Runtime parameter '{name}' is {type(raw).__name__}; expected a credential object with a "
        "'credentialType' key (api_token, basic or s3)."
    )


def _checked(settings: Settings) -> Settings:
    _require_choice("engine", settings.engine, ENGINES)
    _require_choice("model_artifact_route", settings.model_artifact_route, ARTIFACT_ROUTES)
    digest = settings.model_artifact_sha256
    if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest.strip()):
        raise ConfigError(
            f"Runtime parameter 'model_artifact_sha256' is {digest!r}; allowed: 64 hexadecimal "
            "characters, as printed by `sha256sum FILE`."
        )
    _require_choice("on_row_error", settings.on_row_error, ROW_ERROR_MODES)
    _require_choice("NIM_LOG_LEVEL", settings.nim_log_level.upper(), NIM_LOG_LEVELS)
    if settings.engine == "external" and not (settings.base_url or "").startswith(("http://", "https://")):
        raise ConfigError(
            f"Runtime parameter 'base_url' is {redact(settings.base_url or '')!r}; engine=external needs an "
            "http(s) URL of an OpenAI-compatible server, for example http://nim:8000/v1."
        )
    if settings.prompt_template is not None:
        template_columns(settings.prompt_template)
    if settings.response_format is not None:
        response_format_payload(settings.response_format)
    return dataclasses.replace(settings, stop=_stop_sequences(settings.stop))


def _require_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"Runtime parameter '{name}' is {value!r}; allowed: {', '.join(allowed)}.")


def _stop_sequences(raw: Any) -> tuple[str, ...] | None:
    if raw is None or isinstance(raw, tuple):
        return raw
    if not raw.lstrip().startswith("["):
        return (raw,)
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"Runtime parameter 'stop' is {raw!r}; allowed: a string or a JSON list of strings.") from err
    if not (isinstance(values, list) and 1 <= len(values) <= 4 and all(isinstance(v, str) and v for v in values)):
        raise ConfigError(f"Runtime parameter 'stop' is {raw!r}; allowed: a JSON list of 1 to 4 non-empty strings.")
    return tuple(values)
