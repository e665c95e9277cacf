"""Each row's prompt and chat messages: the prompt column's text, prompt_template filled from the row, or a
whole conversation (a JSON list of OpenAI chat messages) from the messages column."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

from nim_drum.config.values import template_columns
from nim_drum.errors import ClientError


@dataclass
class RowPrompts:
    """One prompt per input row; None where the row has nothing to send, with the reason."""

    texts: list[str | None]
    empty_reason: str


def row_prompts(data: pd.DataFrame, prompt_template: str | None, prompt_column_name: str) -> RowPrompts:
    if prompt_template is not None:
        return templated_prompts(data, prompt_template)
    cells = prompt_column(data, prompt_column_name)
    return RowPrompts([cell_text(cell) for cell in cells], "empty prompt: the prompt cell is empty, blank or missing")


def messages_for(system_prompt: str | None, prompt: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": prompt}]


# OpenAI chat roles a batch row may hold (tools are not offered, so no tool results either).
CONVERSATION_ROLES = ("system", "developer", "user", "assistant")
SYSTEM_ROLES = ("system", "developer")
CONVERSATION_EXAMPLE = '[{"role": "user", "content": "Hi"}]'
# A cell longer than this is refused before it is sent: no model's context holds a million characters.
MAX_CELL_CHARS = 1_000_000


@dataclass
class Conversation:
    """A row's messages, or why the row's cell is not a conversation."""

    messages: list[dict] | None
    problem: str | None = None


def conversation_cells(data: pd.DataFrame, column: str) -> list:
    return named_column(data, column, "messages", "messages_column_name", "conversations")


def conversation(cell: object, column: str, system_prompt: str | None) -> Conversation | None:
    """The conversation a messages cell holds, with system_prompt first when it has no system message;
    None when the cell is empty (the row uses its prompt)."""
    text = cell_text(cell)
    if text is None:
        return None
    where = f"the conversation in column {column!r}"
    if len(text) > MAX_CELL_CHARS:
        return Conversation(None, f"{where} is {len(text):,} characters; at most {MAX_CELL_CHARS:,} are sent")
    try:
        messages = json.loads(text)
    except json.JSONDecodeError as err:
        return Conversation(None, f"{where} is not JSON ({err}); expected a JSON list of chat messages such "
                                  f"as {CONVERSATION_EXAMPLE}")
    problem = messages_problem(messages)
    if problem:
        return Conversation(None, f"{where} {problem}")
    if system_prompt and not any(message["role"] in SYSTEM_ROLES for message in messages):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return Conversation(messages)


def messages_problem(messages: object) -> str | None:
    """What makes `messages` not a conversation the model can answer, or None."""
    if not isinstance(messages, list):
        return (f"is a JSON {json_kind(messages)}, not a list of chat messages such as {CONVERSATION_EXAMPLE}")
    if not messages:
        return f"is an empty list; expected at least one message, such as {CONVERSATION_EXAMPLE}"
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"has message {position} as a JSON {json_kind(message)}, not an object with 'role' and 'content'"
        role = message.get("role")
        if role not in CONVERSATION_ROLES:
            return f"has message {position} with role {role!r}; allowed roles: {', '.join(CONVERSATION_ROLES)}"
        content = message.get("content")
        if not (isinstance(content, str) and content.strip()) and not (isinstance(content, list) and content):
            return f"has message {position} ({role}) with no content; give it a non-empty 'content' string"
    if messages[-1]["role"] != "user":
        return (f"ends with a message from {messages[-1]['role']!r}; the last message must be from the user, "
                "for the model to answer it")
    return None


def json_kind(value: object) -> str:
    kinds = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def prompt_column(data: pd.DataFrame, column: str) -> list:
    return named_column(data, column, "prompt", "prompt_column_name", "prompts")


def named_column(data: pd.DataFrame, column: str, kind: str, parameter: str, holds: str) -> list:
    """The cells of the column a runtime parameter names; a 400 naming it and the columns present when absent."""
    if column not in data.columns:
        raise ClientError(
            f"The input has no {kind} column '{column}'; columns present: {columns_present(data)}. Rename the "
            f"column, or set the {parameter} runtime parameter to the column that holds {holds}."
        )
    return data[column].tolist()


def templated_prompts(data: pd.DataFrame, template: str) -> RowPrompts:
    columns = template_columns(template)
    missing = [column for column in columns if column not in data.columns]
    if missing:
        raise ClientError(
            f"prompt_template names columns the input lacks: {', '.join(map(repr, missing))}; columns present: "
            f"{columns_present(data)}. Add those columns, or change the prompt_template runtime parameter."
        )
    texts = []
    for row in data[list(columns)].itertuples(index=False, name=None):
        cells = {column: cell_text(value) for column, value in zip(columns, row, strict=False)}
        filled = any(text is not None for text in cells.values())
        texts.append(template.format_map({c: text or "" for c, text in cells.items()}) if filled else None)
    reason = f"empty prompt: the columns prompt_template names ({', '.join(columns)}) are all empty in this row"
    return RowPrompts(texts, reason)


def columns_present(data: pd.DataFrame) -> str:
    return ", ".join(map(repr, map(str, data.columns))) or "none"


def cell_text(cell: object) -> str | None:
    """A cell's text, or None when it is empty, blank or missing."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    text = str(cell)
    return text if text.strip() else None
