"""Reading the prediction CSV, with a clear 4xx for every way it can be wrong.

custom.py's `read_input_data` hook calls this, so DRUM's own reader (which answers an empty body or a
bad encoding with a 500, and echoes the data in its error) is not used.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

import pandas as pd

from nim_drum.errors import ClientError

BOM = "\ufeff"


def read_csv(data: bytes) -> pd.DataFrame:
    text = _decoded(data).removeprefix(BOM)
    if not text.strip():
        raise ClientError("The input is empty; send a CSV with a header row and one row per prompt.")
    header = _checked_header(text)
    try:
        # Every cell stays text as written: "42" is a prompt, and so are "NA" and "null". A blank line
        # is an empty prompt only in a one-column file (as in DRUM's own reader); a line of empty
        # cells such as "," is a row in any file, so it gets an output row with a row error.
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=len(header) > 1)
    except pd.errors.ParserError as err:
        raise ClientError(f"The input is not valid CSV ({_first_line(err)}); check quoting and field counts.") from err
    return frame


def _decoded(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ClientError(
            f"The input is not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}); save the "
            "CSV as UTF-8, for example with pandas' to_csv(path, encoding='utf-8')."
        ) from err


def _checked_header(text: str) -> list[str]:
    header = next(csv.reader(io.StringIO(text)), [])
    if not any(name.strip() for name in header):
        raise ClientError("The input has no columns; its first line must be a header such as 'promptText'.")
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise ClientError(f"The input has duplicate column names {duplicates}; give every column its own name.")
    return header


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]
