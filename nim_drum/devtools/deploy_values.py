"""A custom model version's runtime parameter values, read from a YAML file and checked before anything is uploaded.

The file maps parameter names (model-metadata.yaml's `fieldName`) to values. A credential parameter
takes a DataRobot credential by its ID, never the secret itself:

    engine: external
    base_url: https://integrate.api.nvidia.com/v1
    engine_api_key: {credentialId: 6571f0c2a3b4c5d6e7f80912}
    max_concurrency: 64

Every value is checked as the model will check it at start (nim_drum.config.settings), so a typo
fails here, naming the parameter, instead of after an upload and a deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nim_drum.config.drum_run import DrumRun
from nim_drum.config.layout import METADATA_FILE, RUNTIME_PARAM_PREFIX
from nim_drum.config.runtime_params import read_definitions, read_yaml
from nim_drum.config.settings import Settings
from nim_drum.errors import ConfigError
from nim_drum.serving.deadline import deadline_seconds

CREDENTIAL_ID = "credentialId"
# What DRUM passes a credential as; here only a stand-in, so the model's own checks can run.
CHECK_CREDENTIAL = {"credentialType": "api_token", "apiToken": "credential-by-id"}
PYTHON_TYPES = {"numeric": (int, float), "string": (str,), "boolean": (bool,)}


@dataclass(frozen=True)
class RuntimeValue:
    field_name: str
    type: str
    value: Any  # a credential's value is its DataRobot credential ID


@dataclass(frozen=True)
class DeployValues:
    source: Path | None
    values: tuple[RuntimeValue, ...]
    settings: Settings

    def deadline_seconds(self) -> float | None:
        """The batch deadline a deployment with these values has: what one batch chunk may take."""
        return deadline_seconds(self.settings, DrumRun.detect(argv=["drum", "server"], environ={}))


def read_values(path: Path | None, code_dir: Path) -> DeployValues:
    """The values in `path` (None: none, the metadata defaults), checked against code_dir's metadata."""
    raw = _read_yaml(path) if path is not None else {}
    definitions = read_definitions(code_dir / METADATA_FILE)
    where = f"{path}" if path is not None else "the values"
    values = tuple(_runtime_value(name, value, definitions, where) for name, value in raw.items())
    return DeployValues(path, values, _checked_settings(values, code_dir, where))


def _read_yaml(path: Path) -> dict:
    raw = read_yaml(path, f"Values file {path} does not exist.", what="Values file ")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"Values file {path} must map runtime parameter names to values; it holds a "
                          f"{type(raw).__name__}.")
    return raw


def _runtime_value(name: str, value: Any, definitions: dict[str, dict], where: str) -> RuntimeValue:
    if name not in definitions:
        raise ConfigError(f"{where}: '{name}' is not a runtime parameter of {METADATA_FILE}; known: "
                          f"{', '.join(sorted(definitions))}.")
    kind = definitions[name]["type"]
    if kind == "credential":
        return RuntimeValue(name, kind, _credential_id(name, value, where))
    if not isinstance(value, PYTHON_TYPES[kind]) or (kind == "numeric" and isinstance(value, bool)):
        raise ConfigError(f"{where}: '{name}' is a {kind} parameter; got {type(value).__name__} {value!r}.")
    return RuntimeValue(name, kind, value)


def _credential_id(name: str, value: Any, where: str) -> str:
    # Never echo the value: a plain string here is most likely the secret itself.
    if isinstance(value, dict) and set(value) == {CREDENTIAL_ID} and isinstance(value[CREDENTIAL_ID], str):
        return value[CREDENTIAL_ID]
    shape = f"an object with keys {sorted(value)}" if isinstance(value, dict) else f"a {type(value).__name__}"
    raise ConfigError(
        f"{where}: '{name}' is a credential parameter and is {shape}; give a DataRobot credential by "
        f"its ID: {{{CREDENTIAL_ID}: <id>}} (create the credential in DataRobot first, under "
        "Credentials management, or with datarobot.Credential.create_api_token)."
    )


def _checked_settings(values: tuple[RuntimeValue, ...], code_dir: Path, where: str) -> Settings:
    environ = {
        RUNTIME_PARAM_PREFIX + v.field_name: json.dumps(
            {"type": v.type, "payload": CHECK_CREDENTIAL if v.type == "credential" else v.value})
        for v in values
    }
    try:
        return Settings.load(code_dir, environ=environ)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err
