"""DRUM's runtime parameters as they arrive: the metadata file that declares them, the environment's JSON
envelopes, credentials, and numbers sent as text (docs/drum.md, "Runtime parameters")."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nim_drum.config.layout import RUNTIME_PARAM_PREFIX
from nim_drum.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Credential:
    """A DataRobot credential of any type (api_token, s3, basic); every field is a secret."""

    kind: str
    fields: tuple[tuple[str, str], ...] = dataclasses.field(repr=False)

    def get(self, key: str) -> str | None:
        return dict(self.fields).get(key)


def read_definitions(path: Path) -> dict[str, dict]:
    metadata = read_yaml(path, f"{path} is missing; copy model-metadata.yaml next to custom.py.")
    return {d["fieldName"]: d for d in metadata.get("runtimeParameterDefinitions") or []}


def read_yaml(path: Path, when_missing: str, what: str = "") -> Any:
    """A YAML file's content; a ConfigError saying `when_missing`, or where the YAML is wrong."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(when_missing) from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{what}{path} is not valid YAML: {err}") from err


def raw_value(name: str, definition: dict, environ: Mapping[str, str]) -> Any:
    env_name = RUNTIME_PARAM_PREFIX + name
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
        raise ConfigError(f"Runtime parameter '{name}': {env_name} must be an object with a 'payload' key.")
    return envelope["payload"]


def number_text(raw: str) -> Any:
    """A numeric payload sent as text ("12", "12.0", "0.5"); a whole number stays whole for int fields."""
    try:
        value = float(raw)
    except ValueError:
        return raw  # pydantic rejects it, and _explained says what is allowed
    return int(value) if value.is_integer() else value


def api_token(name: str, raw: Any) -> str:
    # The value is a secret: messages describe its shape, never its content.
    if isinstance(raw, dict) and isinstance(raw.get("apiToken"), str) and raw["apiToken"]:
        return raw["apiToken"]
    shape = f"an object with keys {sorted(raw)}" if isinstance(raw, dict) else type(raw).__name__
    raise ConfigError(
        f"Runtime parameter '{name}' is {shape}; expected an api_token credential: "
        "{credentialType: api_token, apiToken: <key>}."
    )


def credential(name: str, raw: Any) -> Credential:
    if isinstance(raw, Credential):
        return raw
    if isinstance(raw, dict) and isinstance(raw.get("credentialType"), str):
        fields = tuple(sorted((k, str(v)) for k, v in raw.items() if k != "credentialType" and v is not None))
        return Credential(raw["credentialType"], fields)
    raise ConfigError(
        f"Runtime parameter '{name}' is {type(raw).__name__}; expected a credential object with a "
        "'credentialType' key (api_token, basic or s3)."
    )
