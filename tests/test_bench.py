"""A smoke run of the benchmark (4 prompts), so that `make bench` cannot rot."""

import json
import re
import subprocess
import sys

from conftest import REPO


def test_the_benchmark_runs_end_to_end_and_ends_with_the_three_ratios(tmp_path):
    out = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--prompts", "4", "--max-tokens", "16",
         "--concurrency", "1,2", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-3:]
    assert [line.split(":")[0] for line in last] == [
        "ratio ours/limit", "ratio ours/drum-builtin", "ratio chat-drum/direct@8"
    ]
    assert all(re.fullmatch(r"ratio [^:]+: \d+\.\d\d", line) for line in last)
    report = json.loads((out / "bench.json").read_text())
    names = {run["name"] for run in report["runs"]}
    assert {"direct", "ours: /predictions", "DRUM built-in: /predictions", "chat via drum"} <= names
    assert all(run["output_token_throughput"] > 0 for run in report["runs"])
    assert (out / "bench.png").stat().st_size > 10_000
