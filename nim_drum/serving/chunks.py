"""How large a DataRobot batch chunk may be to finish inside the batch deadline, and what timeout would fit.

DataRobot's Batch Prediction API sends a job's CSV to the deployment in chunks of `chunk_size` bytes
(5 MB by default; `datarobot` 3.20 `BatchPredictionJob.score`), each one `/predictions` request that
DRUM kills after DRUM_CLIENT_REQUEST_TIMEOUT seconds (docs/drum.md). The figures here turn a batch's
measured rows/s into a chunk size that fits, with a margin for the rate varying between chunks.
"""

from __future__ import annotations

import math

# A chunk planned at the measured rate fills only this share of the time it has.
MARGIN = 0.8
# DRUM 1.18.1 accepts DRUM_CLIENT_REQUEST_TIMEOUT from 0 to 3600 s (gunicorn/gunicorn.conf.py).
MOST_REQUEST_TIMEOUT = 3600


def fitting_chunk_bytes(rows_per_second: float, seconds: float, bytes_per_row: float) -> int:
    """The largest chunk, in bytes, that finishes in `seconds` at `rows_per_second`."""
    return max(1, math.floor(rows_per_second * seconds * MARGIN * bytes_per_row))


def seconds_for(rows: int, rows_per_second: float) -> int:
    """The time `rows` need at `rows_per_second`, with the margin."""
    return math.ceil(rows / max(rows_per_second, 1e-9) / MARGIN)


def fitting_request_timeout(rows: int, rows_per_second: float, deadline_share: float) -> int | None:
    """The DRUM_CLIENT_REQUEST_TIMEOUT whose deadline (deadline_share of it) fits `rows`; None past DRUM's most."""
    needed = math.ceil(seconds_for(rows, rows_per_second) / deadline_share)
    return needed if needed <= MOST_REQUEST_TIMEOUT else None
