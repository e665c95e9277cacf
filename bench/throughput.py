"""Throughput at the defaults: our /predictions with no max_concurrency set (the adaptive, engine-wide limit),
4 chunks posted at once, and fixed limits of 16 and 200 beside it, on the same engine in the same run.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import requests

from nim_drum.serving.engine_limits import learned_file

import drum_runs
from loadgen import Run

FIXED_LIMITS = (16, 200)
CHUNKS = 4
DATAROBOT_CHUNK_BYTES = 5_000_000  # datarobot 3.20 BatchPredictionJob.score, chunk_size "fixed" (docs/throughput.md)


def forget_learned(base_url: str, model: str) -> None:
    """A cold start: drop what an earlier run in this process tree learned for this engine."""
    path = learned_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    known.pop(f"{base_url.rstrip('/')}|{model}", None)
    path.write_text(json.dumps(known))


def learned_concurrency(log_path: Path) -> int | None:
    """The limit at the end of the last batch, from its summary line (`... concurrency=N`)."""
    found = re.findall(r"Batch scored: .*? concurrency=(\d+)", log_path.read_text(errors="replace"))
    return int(found[-1]) if found else None


def chunks_run(name: str, url: str, csv_bytes: bytes, rows: int, chunks: int, tokens_of, cpu_probe) -> Run:
    """The CSV split in `chunks` parts, posted at once, as DataRobot's batch API does with num_concurrent."""
    header, *lines = csv_bytes.splitlines()
    parts = [b"\n".join([header, *lines[i::chunks]]) + b"\n" for i in range(chunks)]
    failures: list[str] = []

    def post(part: bytes) -> None:
        response = requests.post(f"{url}/predictions", data=part, headers={"Content-Type": "text/csv"}, timeout=3600)
        if response.status_code != 200:
            failures.append(response.text[:300])

    before, cpu_before = tokens_of(), cpu_probe()
    started = time.perf_counter()
    threads = [threading.Thread(target=post, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{name}: {failures[0]}")
    run = Run(name, 0, rows, seconds, (tokens_of() or 0) - (before or 0))
    run.cpu_seconds = {key: spent - cpu_before[key] for key, spent in cpu_probe().items()}
    return run


def fixed_runs(work: Path, values: dict, csv_bytes: bytes, rows: int, tokens_of, cpu_probe_for,
               after_each=lambda: None) -> list[Run]:
    """/predictions with the limit fixed (adaptive_concurrency false) at each of FIXED_LIMITS; after_each after each."""
    runs = []
    for limit in FIXED_LIMITS:
        fixed = {**values, "adaptive_concurrency": False, "max_concurrency": limit}
        (work / f"fixed-{limit}").mkdir(parents=True, exist_ok=True)
        with drum_runs.ours_server(work / f"fixed-{limit}", fixed) as server:
            run = drum_runs.predictions_run(f"ours: fixed {limit}", server.url, csv_bytes, rows, limit, tokens_of,
                                            cpu_probe_for(server.process.pid))
        print(f"  {run.name:<28} concurrency {limit:>4}: {run.output_token_throughput:8.1f} output tok/s", flush=True)
        runs.append(run)
        after_each()
    return runs


def five_mb_chunk_seconds(run: Run, csv_bytes: bytes) -> float:
    """The seconds a 5 MB chunk of these prompts would take at this run's rows/s."""
    bytes_per_row = len(csv_bytes) / max(run.requests, 1)
    return DATAROBOT_CHUNK_BYTES / bytes_per_row / (run.requests / run.seconds)
