"""Run a batch prediction through `drum score` and print where it went and how it did.

    python -m nim_drum.devtools.batch INPUT.csv OUTPUT.csv    (what `make score` runs)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from nim_drum.devtools.local_drum import run_drum_score

CODE_DIR = Path(__file__).resolve().parents[2]
# `drum score` names the prediction column of its output CSV "Predictions", whatever TARGET_NAME is.
PREDICTION_COLUMN = "Predictions"
SAMPLE_ROWS = 3


def summary(predictions: pd.DataFrame, seconds: float) -> str:
    errors = int((predictions.get("error", pd.Series(dtype=str)).fillna("") != "").sum())
    tokens = int(predictions.get("completion_tokens", pd.Series(dtype=int)).fillna(0).sum())
    rows = len(predictions)
    lines = [
        f"rows={rows} errors={errors} seconds={seconds:.1f} rows/s={rows / seconds:.2f} "
        f"completion_tokens={tokens} tokens/s={tokens / seconds:.1f}"
    ]
    for answer in predictions[PREDICTION_COLUMN].head(SAMPLE_ROWS):
        lines.append(f"  > {str(answer).strip()[:100]!r}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    input_csv, output_csv = Path(argv[0]), Path(argv[1])
    try:
        seconds = run_drum_score(CODE_DIR, input_csv, output_csv)
    except subprocess.CalledProcessError as err:
        print(f"drum score failed with exit code {err.returncode}; its log is above.", file=sys.stderr)
        return 1
    predictions = pd.read_csv(output_csv, keep_default_na=False)
    print(f"\nPredictions: {output_csv}")
    print(summary(predictions, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
