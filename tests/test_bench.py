"""A smoke run of the benchmark (a few prompts, low concurrency, isolation on), so that `make bench` cannot rot."""

import json
import re
import subprocess
import sys

import pytest

from helpers import REPO

SCRIPT_LINES = ["ratio ours/limit", "ratio ours-warm/limit", "ratio ours-4-chunks/limit", "ratio fixed-16/limit", "ratio fixed-200/limit",
                "learned concurrency", "ratio captured", "ratio chat-drum/direct@8",
                "ratio chat-drum/direct@8 isolated", "added latency p50 ms", "added latency p99 ms",
                "simulated share of plateau", "simulated rows to 90%"]


@pytest.mark.bench
def test_the_benchmark_runs_both_core_layouts_and_ends_with_the_script_lines(tmp_path):
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--prompts", "4", "--max-tokens", "8",
         "--concurrency", "1,2", "--sweep-requests", "4", "--engine-slots", "8",
         "--latency-pairs", "10", "--isolate", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-len(SCRIPT_LINES):]
    assert [line.split(":")[0] for line in last] == SCRIPT_LINES
    assert all(re.fullmatch(r"[^:]+: -?\d+(\.\d+)?", line) for line in last), last
    ours_over_limit = float(last[0].split(": ")[1])
    assert ours_over_limit <= 1.02 or "MEASUREMENT ERROR (shared): ours/limit" in result.stdout
    assert re.search(r"^machine: .*\d+ CPUs", result.stdout, re.MULTILINE)
    assert re.search(r"^engine: embedded llama-server \S+", result.stdout, re.MULTILINE)

    report = json.loads((out / "bench.json").read_text())
    assert set(report["phases"]) == {"shared", "isolated"}
    for phase in report["phases"].values():
        names = {run["name"] for run in phase["runs"]}
        assert {"direct, streamed", "direct, not streamed", "ours: /predictions", "DRUM built-in: /predictions",
                "chat via DRUM, streamed", "direct, streamed, before chat"} <= names
        assert all(run["output_token_throughput"] > 0 for run in phase["runs"])
        assert phase["added_latency"]["pairs"] == 10
        assert phase["ratios"]["limit"]["mode"] == "limit: direct, ours' rows"  # the same rows as ours
        limit_runs = sum(run["name"] == "limit: direct, ours' rows" for run in phase["runs"])
        assert limit_runs == sum(run["name"].startswith("ours: ") and run["name"] != "ours: drum score"
                                 for run in phase["runs"]) + 1  # one before each of ours' batch runs, one after
    assert (out / "bench.png").stat().st_size > 10_000
    shared = {run["name"] for run in report["phases"]["shared"]["runs"]}
    assert {"ours: /predictions, warm", "ours: 4 chunks at once", "ours: fixed 16", "ours: fixed 200"} <= shared
