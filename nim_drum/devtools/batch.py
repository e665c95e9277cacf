"""Run a batch prediction through `drum score`, with a progress bar, and print where it went and how it did.

    python -m nim_drum.devtools.batch INPUT.csv OUTPUT.csv    (what `make score` runs)

The rows are scored inside DRUM's process: this tool sets NIM_DRUM_PROGRESS_FILE for it, and draws
the bar (rows done/total, tokens/s, ETA) from the counts `score` writes there.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from nim_drum.devtools.local_drum import drum_env, drum_score_command
from nim_drum.serving.progress import PROGRESS_FILE_ENV, Counts, read_progress

CODE_DIR = Path(__file__).resolve().parents[2]
# `drum score` names the prediction column of its output CSV "Predictions", whatever TARGET_NAME is.
PREDICTION_COLUMN = "Predictions"
SAMPLE_ROWS = 3
POLL_SECONDS = 0.5
STOP_SECONDS = 10
READS_WRITES = ("Reads INPUT.csv (a promptText column), this checkout as DRUM's code directory and the "
                "MLOPS_RUNTIME_PARAM_* variables; writes OUTPUT.csv (one row per input row) and prints a summary.")


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


def score_with_progress(input_csv: Path, output_csv: Path) -> float:
    """`drum score` with a progress bar; the seconds it took. CalledProcessError when it fails."""
    command = drum_score_command(CODE_DIR, input_csv, output_csv)
    with tempfile.TemporaryDirectory(prefix="nim-drum-progress-") as folder:
        progress_file = str(Path(folder) / "progress.json")
        started = time.monotonic()
        process = subprocess.Popen(command, env=drum_env({**os.environ, PROGRESS_FILE_ENV: progress_file}),
                                   start_new_session=True)
        try:
            follow_progress(process, progress_file)
        finally:
            stop(process)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return time.monotonic() - started


def follow_progress(process: subprocess.Popen, progress_file: str) -> None:
    bar = None
    while True:
        running = process.poll() is None
        counts = read_progress(progress_file)
        if counts is not None:
            bar = bar or tqdm(total=counts.rows_total, unit="row", desc="Scoring", dynamic_ncols=True)
            advance(bar, counts)
        if not running:
            break
        time.sleep(POLL_SECONDS)
    if bar is not None:
        bar.close()


def advance(bar: tqdm, counts: Counts) -> None:
    tokens_per_second = counts.completion_tokens / max(counts.seconds, 1e-9)
    bar.set_postfix_str(f"tokens/s={tokens_per_second:.1f} failed={counts.failed}", refresh=False)
    bar.update(counts.rows_done - bar.n)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nim_drum.devtools.batch", description=__doc__.split("\n\n")[0],
                                     epilog=READS_WRITES)
    parser.add_argument("input", type=Path, metavar="INPUT.csv", help="the prompts to score")
    parser.add_argument("output", type=Path, metavar="OUTPUT.csv", help="where the predictions go")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    input_csv, output_csv = args.input, args.output
    try:
        seconds = score_with_progress(input_csv, output_csv)
    except subprocess.CalledProcessError as err:
        print(f"drum score failed with exit code {err.returncode}; its log is above.", file=sys.stderr)
        return 1
    predictions = pd.read_csv(output_csv, keep_default_na=False)
    print(f"\nPredictions: {output_csv}")
    print(summary(predictions, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
