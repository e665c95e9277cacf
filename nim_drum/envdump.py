"""Print the environment with secrets redacted (start_server.sh, ENABLE_CUSTOM_MODEL_RUNTIME_ENV_DUMP=1).

    python -m nim_drum.envdump

Redacted: variables whose name looks like a secret (NGC_API_KEY, *TOKEN*, *PASSWORD*, ...), the
secret fields inside DRUM's `MLOPS_RUNTIME_PARAM_<name>` JSON (a credential's apiToken, password,
awsSecretAccessKey, ...: the rest of the JSON stays readable), and passwords in URLs. Standard
library only: it runs before DRUM and must not import anything that could fail.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
RUNTIME_PARAM_PREFIX = "MLOPS_RUNTIME_PARAM_"
# A name is secret when one of its words (NGC_API_KEY, apiToken, awsSecretAccessKey) is one of these,
# or ends with one (APIKEY, dbpassword). Whole words, so that max_tokens is not a secret.
SECRET_WORDS = {"key", "token", "secret", "password", "passwd", "credential", "credentials",
                "passphrase", "auth", "authorization", "cookie", "signature"}
SECRET_ENDINGS = ("key", "token", "secret", "password", "passwd")
# Contains a secret word but names the kind of credential, which helps to read the dump.
NOT_SECRETS = {"credentialtype"}
WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*):[^/@\s]+@")


def redacted_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: redact_variable(name, value) for name, value in sorted(environ.items())}


def redact_variable(name: str, value: str) -> str:
    if name.startswith(RUNTIME_PARAM_PREFIX):
        return _redact_runtime_param(name.removeprefix(RUNTIME_PARAM_PREFIX), value)
    if looks_secret(name):
        return REDACTED
    return _redact_url_passwords(value)


def looks_secret(name: str) -> bool:
    if name.lower() in NOT_SECRETS:
        return False
    words = [word.lower() for word in WORD.findall(name)]
    return any(word in SECRET_WORDS or word.endswith(SECRET_ENDINGS) for word in words)


def _redact_runtime_param(param: str, value: str) -> str:
    try:
        envelope = json.loads(value)
    except json.JSONDecodeError:
        return REDACTED if looks_secret(param) else _redact_url_passwords(value)
    if not isinstance(envelope, dict):
        return REDACTED if looks_secret(param) else value
    secret_param = envelope.get("type") == "credential" or looks_secret(param)
    redacted = {key: _redact_field(key, field, secret_param) for key, field in envelope.items()}
    return json.dumps(redacted)


def _redact_field(key: str, value: Any, secret_param: bool) -> Any:
    if key == "payload":
        return _redact_payload(value, secret_param)
    return value


def _redact_payload(payload: Any, secret_param: bool) -> Any:
    if isinstance(payload, dict) and secret_param:
        # A credential: every field but its type is hidden, whatever the field is called.
        return {key: value if key.lower() in NOT_SECRETS else REDACTED for key, value in payload.items()}
    if isinstance(payload, dict):
        return {key: _redact_json_value(key, value) for key, value in payload.items()}
    if payload is None or not secret_param:
        return _redact_url_passwords(payload) if isinstance(payload, str) else payload
    return REDACTED


def _redact_json_value(key: str, value: Any) -> Any:
    if looks_secret(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, dict):
        return {inner: _redact_json_value(inner, item) for inner, item in value.items()}
    return _redact_url_passwords(value) if isinstance(value, str) else value


def _redact_url_passwords(value: str) -> str:
    return URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", value)


def main() -> None:
    for name, value in redacted_environment(os.environ).items():
        sys.stdout.write(f"{name}={value}\n")


if __name__ == "__main__":
    main()
