"""The runs through DRUM: our batch scoring (`drum score`, `drum server` /predictions), chat, DRUM's built-in."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import requests

from nim_drum.devtools.local_drum import DrumServer, run_drum_score

from loadgen import Run
from machine import REPO


def engine_tokens_counter(root: str):
    """Output tokens the engine has generated so far, from its Prometheus metrics (None: unknown)."""
    def read():
        # llama-server: /metrics; vLLM: /metrics; NIM: /v1/metrics (vLLM's names, with labels).
        pattern = r"^(?:llamacpp:tokens_predicted_total|(?:vllm:)?generation_tokens_total(?:\{[^}]*\})?) (\S+)"
        for path in ("/metrics", "/v1/metrics"):
            try:
                text = requests.get(root + path, timeout=5).text
            except requests.RequestException:
                continue
            found = re.findall(pattern, text, re.MULTILINE)
            if found:
                return int(sum(float(v) for v in found))
        return None

    return read


def ours_runtime_params(base_url: str, model: str, max_tokens: int, max_concurrency: int | None, api_key: str) -> dict:
    """Our runtime parameters; with max_concurrency None, the defaults (the adaptive limit)."""
    values = {"engine": "external", "base_url": base_url, "max_tokens": max_tokens, "temperature": 0,
              "served_model_name": model, "system_prompt": None}
    if max_concurrency is not None:
        values.update(max_concurrency=max_concurrency, adaptive_concurrency=False)
    if api_key != "unused":
        values["engine_api_key"] = {"credentialType": "api_token", "apiToken": api_key}
    return values


def drum_score_run(work: Path, csv_path: Path, rows: int, values: dict) -> Run:
    """`drum score` on the prompts CSV; the scoring time our score logs, without DRUM's start-up."""
    env = {**os.environ, **_runtime_param_env(values)}
    log_path = work / "drum-score.log"
    with open(log_path, "wb") as log:
        run_drum_score(REPO, csv_path, work / "out.csv", env=env, log=log, args=["--logging-level", "info"])
    scored = float(re.search(r"Batch scored: .*? seconds=(\S+)", log_path.read_text(errors="replace")).group(1))
    tokens = int(pd.read_csv(work / "out.csv")["completion_tokens"].sum())
    learned = re.findall(r"Batch scored: .*? concurrency=(\d+)", log_path.read_text(errors="replace"))
    return Run("ours: drum score", int(learned[-1]) if learned else 0, rows, scored, tokens)


@contextmanager
def ours_server(work: Path, values: dict):
    import yaml

    params = work / "values.yaml"
    params.write_text(yaml.safe_dump(values))
    # INFO: the batch summary lines, whose concurrency=N is the limit each batch ended at.
    args = ["--runtime-params-file", str(params), "--logging-level", "info"]
    server = DrumServer(REPO, work / "drum-ours.log", args).wait_ready()
    try:
        yield server
    finally:
        server.stop()


def predictions_run(name: str, url: str, csv_bytes: bytes, rows: int, concurrency: int, tokens_of,
                    cpu_probe: Callable[[], dict] = dict) -> Run:
    """POST the CSV to /predictions (after one row, to warm DRUM up); output tokens from the engine's own counter."""
    header, first_row = csv_bytes.splitlines()[:2]
    requests.post(f"{url}/predictions", data=header + b"\n" + first_row + b"\n",
                  headers={"Content-Type": "text/csv"}, timeout=600).raise_for_status()
    before, cpu_before = tokens_of(), cpu_probe()
    started = time.perf_counter()
    response = requests.post(f"{url}/predictions", data=csv_bytes, headers={"Content-Type": "text/csv"}, timeout=3600)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    after = tokens_of()
    tokens = after - before if before is not None and after is not None else _reported_tokens(response.json())
    run = Run(name, concurrency, rows, seconds, tokens)
    run.cpu_seconds = {key: spent - cpu_before[key] for key, spent in cpu_probe().items()}
    return run


def _reported_tokens(body: dict) -> int:
    """Our score reports completion_tokens per row; DRUM's built-in reports nothing (0)."""
    extra = body.get("extraModelOutput") or {}
    if "completion_tokens" not in extra.get("columns", []):
        return 0
    column = extra["columns"].index("completion_tokens")
    return int(sum(row[column] for row in extra["data"]))


def drum_builtin_run(work: Path, root: str, csv_bytes: bytes, rows: int, max_tokens: int,
                     tokens_of, cpu_probe_for: Callable[[int], Callable[[], dict]]) -> Run:
    """DRUM's own NIM predictor /predictions, sidecar mode, on a code dir with no custom.py."""
    host, port = root.removeprefix("http://").removeprefix("https://").split(":")
    code_dir = work / "builtin"
    code_dir.mkdir(exist_ok=True)
    params = {"max_tokens": max_tokens, "temperature": 0, "prompt_column_name": "promptText",
              "DR_NIM_HEALTH_ROUTE": health_route(root)}
    env = {**os.environ, "OPENAI_HOST": host, "OPENAI_PORT": port, "GPU_COUNT": "1", **_runtime_param_env(params)}
    server = DrumServer(code_dir, work / "drum-builtin.log", ["--gpu-predictor", "nim", "--sidecar"], env).wait_ready()
    try:
        run = predictions_run("DRUM built-in: /predictions", server.url, csv_bytes, rows, 1, tokens_of,
                              cpu_probe_for(server.process.pid))
    finally:
        server.stop()
    if not run.output_tokens:
        raise RuntimeError("the engine reports no token metrics; DRUM built-in throughput cannot be counted")
    return run


def health_route(root: str) -> str:
    """The engine's readiness route, which DRUM's NIM predictor polls: NIM's, else vLLM's and llama-server's."""
    for route in ("/v1/health/ready", "/health"):
        try:
            if requests.get(root + route, timeout=5).status_code == 200:
                return route
        except requests.RequestException:
            continue
    return "/v1/health/ready"


def _runtime_param_env(values: dict) -> dict:
    return {"MLOPS_RUNTIME_PARAM_" + k: json.dumps({"type": _kind(v), "payload": v}) for k, v in values.items()}


def _kind(value) -> str:
    if isinstance(value, dict):
        return "credential"
    return "numeric" if isinstance(value, (int, float)) and not isinstance(value, bool) else "string"
