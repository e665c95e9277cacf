"""Progress: the batch CLI's bar (fed by the file `score` writes inside DRUM) and DRUM's progress log line."""

import logging
import subprocess
import sys

import pandas as pd

from nim_drum.serving import progress
from nim_drum.serving.progress import PROGRESS_FILE_ENV, read_progress

from helpers import REPO, external_params, runtime_env, score_through


def test_score_writes_its_counts_to_the_progress_file(fault_proxy, tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(path))
    score_through(fault_proxy, ["Say hi. (1)", "Say hi. (2)", ""])
    counts = read_progress(str(path))
    assert (counts.rows_done, counts.rows_total, counts.failed) == (3, 3, 1) and counts.completion_tokens > 0


def test_a_batch_longer_than_the_log_interval_logs_progress_with_the_concurrency(fault_proxy, caplog, monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 1.0)
    fault_proxy.inject("slow", match="(slow)", seconds=2.0)
    with caplog.at_level(logging.INFO, logger="nim_drum"):
        score_through(fault_proxy, ["Say hi. (fast)", "Say hi. (slow)"], adaptive_concurrency=False, max_concurrency=8)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Batch progress")]
    assert len(lines) == 1 and lines[0].startswith("Batch progress: rows 2/2 failed=0 tokens/s="), lines
    assert "concurrency=8 ETA 0 s" in lines[0]
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Batch scored")]
    assert summary[0].endswith(" concurrency=8")


def test_a_short_batch_logs_no_progress_line(fault_proxy, caplog):
    with caplog.at_level(logging.INFO, logger="nim_drum"):
        score_through(fault_proxy, ["Say hi."])
    assert "Batch progress" not in caplog.text and "Batch scored" in caplog.text


def test_the_batch_cli_draws_a_progress_bar(fault_proxy, tmp_path):
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"promptText": [f"Say hi. ({i})" for i in range(6)]}).to_csv(source, index=False)
    finished = subprocess.run(
        [sys.executable, "-m", "nim_drum.devtools.batch", str(source), str(output)],
        cwd=REPO, env=runtime_env(external_params(fault_proxy)), capture_output=True, text=True, timeout=300,
    )
    (tmp_path / "batch.log").write_text(finished.stdout + finished.stderr)  # kept for the secret-leak scan
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Scoring: 100%" in finished.stderr and "6/6" in finished.stderr and "tokens/s=" in finished.stderr
    assert "Predictions:" in finished.stdout and len(pd.read_csv(output)) == 6
