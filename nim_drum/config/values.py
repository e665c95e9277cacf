"""Runtime parameter values with a grammar of their own: prompt_template, response_format, stop, adapter
names, and the NIM route and port that DRUM's NIM predictor reads."""

from __future__ import annotations

import functools
import json
import string

from nim_drum.errors import ConfigError

TEMPLATE_HELP = "write input columns as {column} and literal braces as {{ and }}"
JSON_OBJECT = "json_object"
SCHEMA_NAME = "row"
JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
ALLOWED = (
    'allowed: json_object, or a JSON Schema written as JSON, such as {"type": "object", "properties": '
    '{"answer": {"type": "string"}}, "required": ["answer"]}'
)


@functools.cache
def response_format_payload(raw: str) -> dict:
    """OpenAI's `response_format` for the parameter's value; a ConfigError naming it when invalid."""
    if raw.strip() == JSON_OBJECT:
        return {"type": JSON_OBJECT}
    try:
        schema = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"Runtime parameter 'response_format' is not JSON ({err}); {ALLOWED}.") from err
    problem = schema_problem(schema)
    if problem:
        raise ConfigError(f"Runtime parameter 'response_format' is not a JSON Schema: {problem}; {ALLOWED}.")
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema}}


def schema_problem(schema: object, where: str = "the schema") -> str | None:
    """The first structural fault of a JSON Schema (its types and properties), or None."""
    if not isinstance(schema, dict):
        return f"{where} is {type(schema).__name__}, not an object"
    kinds = schema.get("type", "object")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    unknown = [kind for kind in kinds if kind not in JSON_TYPES]
    if unknown:
        return f"{where} has type {unknown[0]!r}; JSON types are {', '.join(sorted(JSON_TYPES))}"
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return f"{where}'s 'properties' is not an object"
    required = schema.get("required", [])
    if not (isinstance(required, list) and all(isinstance(name, str) for name in required)):
        return f"{where}'s 'required' is not a list of property names"
    for name, child in [*properties.items(), *([("items", schema["items"])] if "items" in schema else [])]:
        problem = schema_problem(child, f"property {name!r}")
        if problem:
            return problem
    return None


def template_columns(template: str) -> tuple[str, ...]:
    """The input columns a prompt_template names, in order; a ConfigError when it is malformed."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        template.format_map({name: "" for name in names})
    except (ValueError, AttributeError, IndexError, KeyError, TypeError) as err:
        raise ConfigError(
            f"Runtime parameter 'prompt_template' is not a valid template ({type(err).__name__}: {err}); "
            f"{TEMPLATE_HELP}."
        ) from err
    unnamed = [name for name in names if not name.strip() or name.isdigit()]
    if unnamed or not names:
        raise ConfigError(
            f"Runtime parameter 'prompt_template' is {template!r}, which names no input column; {TEMPLATE_HELP}, "
            "for example 'Summarise in one line: {review_text}'."
        )
    return tuple(dict.fromkeys(names))


ADAPTER_NAME_HELP = (
    "an adapter is named by its folder in NIM_PEFT_SOURCE, as the engine's /v1/models lists it: "
    "letters, digits, '.', '_', '-' and ':', at most 256 characters, with no path separator"
)
MAX_ADAPTER_NAME = 256


def adapter_name_problem(name: str) -> str | None:
    """Why `name` cannot be an adapter's name (a path, a control character, too long), or None."""
    if "/" in name or "\\" in name:
        return "it holds a path separator"
    if name in (".", "..") or name.startswith("."):
        return "it starts with '.'"
    if len(name) > MAX_ADAPTER_NAME:
        return f"it is {len(name)} characters long"
    if not all(char.isalnum() or char in "._-:" for char in name):
        return "it holds a character other than letters, digits, '.', '_', '-' and ':'"
    return None


def stop_sequences(raw: str | None) -> tuple[str, ...] | None:
    """The stop parameter: one string as it is (whitespace matters: a stop of a newline), or a JSON list."""
    if raw is None or raw == "":
        return None
    if not raw.lstrip().startswith("["):
        return (raw,)
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"Runtime parameter 'stop' is {raw!r}; allowed: a string or a JSON list of strings.") from err
    if not (isinstance(values, list) and 1 <= len(values) <= 4 and all(isinstance(v, str) and v for v in values)):
        raise ConfigError(f"Runtime parameter 'stop' is {raw!r}; allowed: a JSON list of 1 to 4 non-empty strings.")
    return tuple(values)


def health_route(route: str | None) -> str:
    """DR_NIM_HEALTH_ROUTE: DRUM appends it to http://host:port, so it must be a path."""
    if not route or not route.startswith("/"):
        raise ConfigError(
            f"Runtime parameter 'DR_NIM_HEALTH_ROUTE' is {route!r}; allowed: a path that starts with /, "
            "such as NIM's /v1/health/ready (the default)."
        )
    return route


def port_number(raw: object) -> int | None:
    """DR_NIM_SERVER_PORT, declared as a string as DRUM reads it (it formats the value into
    NIM_SERVER_PORT and a URL, so 8000.0 would break both); empty is None."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return None
    if not (text.isdigit() and 1 <= int(text) <= 65535):
        raise ConfigError(
            f"Runtime parameter 'DR_NIM_SERVER_PORT' is {raw!r}; allowed: a port number from 1 to 65535 "
            "written as digits, or empty for OPENAI_PORT."
        )
    return int(text)
