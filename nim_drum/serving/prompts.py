"""Each row's prompt and chat messages: the prompt column's text, or prompt_template filled from the row."""

from __future__ import annotations

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


def prompt_column(data: pd.DataFrame, column: str) -> list:
    if column not in data.columns:
        raise ClientError(
            f"The input has no prompt column '{column}'; columns present: {columns_present(data)}. Rename the "
            "column, or set the prompt_column_name runtime parameter to the column that holds prompts."
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
