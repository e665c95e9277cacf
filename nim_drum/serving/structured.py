"""Structured output: the response_format parameter as OpenAI's `response_format`, and checking answers."""

from __future__ import annotations

import functools
import json

from nim_drum.errors import ConfigError

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
        raise ConfigError(f"Runtime parameter 'response_format' is not JSON ({err}); {ALLOWED}.") from None
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


def answer_problem(answers: list[str]) -> str | None:
    """Why an answer that should be JSON is not, or None when every choice parses."""
    for answer in answers:
        try:
            json.loads(answer)
        except json.JSONDecodeError as err:
            return (
                f"the answer is not valid JSON ({err.msg} at character {err.pos}) although response_format asks "
                "for JSON; raise max_tokens if it was cut off (finish_reason length)"
            )
    return None
