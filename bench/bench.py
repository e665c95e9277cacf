"""Benchmark: batch scoring and chat serving against the engine's own limit and DRUM's built-in.

    make bench                                   # embedded engine, 64 prompts
    make bench ARGS="--base-url http://nim:8000/v1 --api-key $KEY"   # a real NIM on a GPU host
    make bench ARGS="--engine vllm"              # vLLM from .venv-vllm (make test-vllm) on SmolLM2

Everything in one run hits the same engine with the same prompts (max_tokens 64, temperature 0):
1. the limit: a direct streaming client at each concurrency (request/output-token throughput,
   TTFT, ITL, named as genai-perf and `vllm bench serve` name them);
2. ours, batch: `drum score` and `drum server` /predictions with our score;
3. DRUM built-in: DRUM's NIM predictor /predictions in sidecar mode, with no custom score;
4. ours, serving: chat through `drum server` at concurrency 1 and 8, and the latency DRUM adds.
The last three lines are the ratios, for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pandas as pd
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nim_drum.devtools.local_drum import DrumServer, run_drum_score  # noqa: E402

TOPICS = ["the ocean", "volcanoes", "honey bees", "the moon", "bicycles", "coffee", "glaciers", "owls"]
TASKS = ["Write a short story about {}.", "Explain {} to a child.", "List facts about {}.",
         "Describe {} in detail.", "Write a poem about {}.", "Give advice about {}.",
         "Compare {} with mountains.", "Tell the history of {}."]
LATENCY_PROBES = 40


@dataclass
class Run:
    """One measured configuration; metric names follow genai-perf / vllm bench serve."""

    name: str
    concurrency: int
    requests: int
    seconds: float
    output_tokens: int
    ttft_ms: list[float] = field(default_factory=list, repr=False)
    itl_ms: list[float] = field(default_factory=list, repr=False)
    latency_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def request_throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def output_token_throughput(self) -> float:
        return self.output_tokens / self.seconds

    def summary(self) -> dict:
        mean = lambda values: round(statistics.fmean(values), 1) if values else None  # noqa: E731
        return {
            "name": self.name, "concurrency": self.concurrency, "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "request_throughput": round(self.request_throughput, 3),
            "output_token_throughput": round(self.output_token_throughput, 1),
            "time_to_first_token_ms": mean(self.ttft_ms), "inter_token_latency_ms": mean(self.itl_ms),
            "request_latency_ms": mean(self.latency_ms),
        }


def make_prompts(count: int) -> list[str]:
    return [TASKS[i % len(TASKS)].format(TOPICS[(i // len(TASKS)) % len(TOPICS)]) + f" ({i})" for i in range(count)]


def stream_one(client: openai.OpenAI, model: str, prompt: str, max_tokens: int) -> tuple[float, float, list[float], int]:
    started = time.perf_counter()
    arrivals, tokens = [], 0
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
        temperature=0, stream=True, stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter())
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    ttft = (arrivals[0] - started) * 1000 if arrivals else 0.0
    itl = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:])]
    return (time.perf_counter() - started) * 1000, ttft, itl, tokens or len(arrivals)


def streamed(name: str, client, model, prompts, concurrency, max_tokens) -> Run:
    """Stream every prompt's completion, `concurrency` at a time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda p: stream_one(client, model, p, max_tokens), prompts))
    run = Run(name, concurrency, len(prompts), time.perf_counter() - started, sum(r[3] for r in results))
    for latency, ttft, itl, _ in results:
        run.latency_ms.append(latency)
        run.ttft_ms.append(ttft)
        run.itl_ms.extend(itl)
    return run


def added_latency_ms(direct_url: str, drum_url: str, model: str) -> float:
    """p50 of (chat via DRUM) minus p50 of (direct), one request at a time, 1 output token each."""
    def p50(base_url):
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        samples = []
        for i in range(LATENCY_PROBES):
            started = time.perf_counter()
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"Hi {i % 4}"}], max_tokens=1, temperature=0
            )
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    p50(direct_url)  # warm the engine's prompt cache for the probe prompts
    return p50(f"{drum_url}/v1") - p50(direct_url)


def predictions_run(name: str, url: str, csv_bytes: bytes, rows: int, concurrency: int, tokens_of) -> Run:
    """POST the CSV to /predictions; output tokens from the engine's own counter."""
    before = tokens_of()
    started = time.perf_counter()
    response = requests.post(f"{url}/predictions", data=csv_bytes, headers={"Content-Type": "text/csv"}, timeout=3600)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    after = tokens_of()
    tokens = after - before if before is not None and after is not None else _reported_tokens(response.json())
    return Run(name, concurrency, rows, seconds, tokens)


def _reported_tokens(body: dict) -> int:
    """Our score reports completion_tokens per row; DRUM's built-in reports nothing (0)."""
    extra = body.get("extraModelOutput") or {}
    if "completion_tokens" not in extra.get("columns", []):
        return 0
    column = extra["columns"].index("completion_tokens")
    return int(sum(row[column] for row in extra["data"]))


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


def start_engine(max_concurrency: int, kind: str = "embedded"):
    from nim_drum.engines.embedded import start_embedded
    from nim_drum.serving.settings import Settings
    from nim_drum.engines.vllm_engine import start_vllm

    environ = {"MLOPS_RUNTIME_PARAM_max_concurrency": json.dumps({"type": "numeric", "payload": max_concurrency}),
               "MLOPS_RUNTIME_PARAM_engine": json.dumps({"type": "string", "payload": kind})}
    if kind == "embedded":
        return start_embedded(Settings.load(REPO, environ=environ), REPO)
    # vLLM serves the checkpoint that `make test-vllm` converts from the same SmolLM2 GGUF.
    code_dir = Path(tempfile.mkdtemp(prefix="nim-drum-bench-vllm-"))
    (code_dir / "model-repo").symlink_to(REPO / ".venv-vllm" / "smollm2-135m-instruct")
    return start_vllm(Settings.load(REPO, environ=environ), code_dir)


def values_file(directory: Path, values: dict) -> Path:
    import yaml

    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def plot(direct_runs: list[Run], ours: Run, builtin: Run, chat_runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot([r.concurrency for r in direct_runs], [r.output_token_throughput for r in direct_runs],
              "o-", label="direct client (the limit)")
    axes.plot([r.concurrency for r in chat_runs], [r.output_token_throughput for r in chat_runs],
              "s--", label="ours: chat through drum server")
    axes.scatter([ours.concurrency], [ours.output_token_throughput], marker="*", s=200, color="green",
                 label="ours: batch /predictions", zorder=3)
    axes.scatter([builtin.concurrency], [builtin.output_token_throughput], marker="X", s=120, color="red",
                 label="DRUM built-in /predictions", zorder=3)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("concurrency (requests in flight)")
    axes.set_ylabel("output tokens / s")
    axes.set_title("Throughput against concurrency")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def print_table(runs: list[Run]) -> None:
    header = f"{'run':<26}{'conc':>5}{'req':>5}{'sec':>8}{'req/s':>8}{'out tok/s':>11}{'TTFT ms':>9}{'ITL ms':>8}{'lat ms':>9}"
    print(header)
    print("-" * len(header))
    for run in runs:
        s = run.summary()
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
        print(f"{s['name']:<26}{s['concurrency']:>5}{s['requests']:>5}{s['seconds']:>8.1f}"
              f"{s['request_throughput']:>8.2f}{s['output_token_throughput']:>11.1f}"
              f"{fmt(s['time_to_first_token_ms'], '>9.1f'):>9}{fmt(s['inter_token_latency_ms'], '>8.1f'):>8}"
              f"{fmt(s['request_latency_ms'], '>9.1f'):>9}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="1,2,4,8,16", help="levels for the direct client")
    parser.add_argument("--max-concurrency", type=int, default=16, help="our max_concurrency for batch scoring")
    parser.add_argument("--base-url", help="an OpenAI-compatible engine (a NIM); default: start --engine")
    parser.add_argument("--engine", choices=("embedded", "vllm"), default="embedded",
                        help="the local engine to start when no --base-url is given")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--model", help="model name at --base-url (default: its first model)")
    parser.add_argument("--out", default=str(REPO / "output" / "bench"))
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nim-drum-bench-"))
    base_url = args.base_url or start_engine(args.max_concurrency, args.engine).base_url
    root = base_url.removesuffix("/v1")
    client = openai.OpenAI(base_url=base_url, api_key=args.api_key, max_retries=0, timeout=600)
    model = args.model or client.models.list().data[0].id
    prompts = make_prompts(args.prompts)
    csv_path = work / "prompts.csv"
    pd.DataFrame({"promptText": prompts}).to_csv(csv_path, index=False)
    csv_bytes = csv_path.read_bytes()
    tokens_of = engine_tokens_counter(root)
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"engine: {base_url} model: {model} prompts: {len(prompts)} max_tokens: {args.max_tokens}", flush=True)

    direct_runs = [streamed("direct", client, model, prompts, c, args.max_tokens) for c in levels]

    ours_values = {"engine": "external", "base_url": base_url, "max_tokens": args.max_tokens, "temperature": 0,
                   "max_concurrency": args.max_concurrency, "served_model_name": model, "system_prompt": None}
    if args.api_key != "unused":
        ours_values["engine_api_key"] = {"credentialType": "api_token", "apiToken": args.api_key}
    env = {"MLOPS_RUNTIME_PARAM_" + k: json.dumps({"type": _kind(v), "payload": v}) for k, v in ours_values.items()}
    env = {**os.environ, **env}
    with open(work / "drum-score.log", "wb") as log:
        seconds = run_drum_score(REPO, csv_path, work / "out.csv", env=env, log=log, args=["--logging-level", "info"])
    score_log = (work / "drum-score.log").read_text(errors="replace")
    scored = float(re.search(r"Batch scored: .*? seconds=(\S+)", score_log).group(1))
    score_tokens = int(pd.read_csv(work / "out.csv")["completion_tokens"].sum())
    drum_score_run = Run("ours: drum score", args.max_concurrency, len(prompts), scored, score_tokens)
    drum_score_wall = Run("ours: drum score (wall)", args.max_concurrency, len(prompts), seconds, score_tokens)

    ours_server = DrumServer(REPO, work / "drum-ours.log",
                             ["--runtime-params-file", str(values_file(work, ours_values))]).wait_ready()
    try:
        ours = predictions_run("ours: /predictions", ours_server.url, csv_bytes, len(prompts),
                               args.max_concurrency, tokens_of)
        drum_client = openai.OpenAI(base_url=f"{ours_server.url}/v1", api_key="unused", max_retries=0, timeout=600)
        chat_runs = [streamed("chat via drum", drum_client, model, prompts, c, args.max_tokens) for c in (1, 8)]
        added_ms = added_latency_ms(base_url, ours_server.url, model)
    finally:
        ours_server.stop()

    builtin = drum_builtin(work, root, csv_bytes, len(prompts), args, tokens_of, model)

    runs = [*direct_runs, drum_score_run, drum_score_wall, ours, builtin, *chat_runs]
    print()
    print_table(runs)
    limit = max(direct_runs, key=lambda r: r.output_token_throughput)
    direct_at_8 = next((r for r in direct_runs if r.concurrency == 8), limit)
    ratios = {
        "ours/limit": ours.output_token_throughput / limit.output_token_throughput,
        "ours/drum-builtin": ours.output_token_throughput / builtin.output_token_throughput,
        "chat-drum/direct@8": chat_runs[1].output_token_throughput / direct_at_8.output_token_throughput,
    }
    report = {"engine": base_url, "engine_kind": "external" if args.base_url else args.engine, "model": model, "prompts": len(prompts), "max_tokens": args.max_tokens,
              "runs": [r.summary() for r in runs], "added_latency_p50_ms": round(added_ms, 2),
              "limit": limit.summary(), "ratios": {k: round(v, 3) for k, v in ratios.items()}}
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    plot(direct_runs, ours, builtin, chat_runs, out / "bench.png")
    print(f"\nlatency DRUM adds to one chat request (p50): {added_ms:.1f} ms")
    print(f"results: {out / 'bench.json'}, {out / 'bench.png'}")
    for name, value in ratios.items():
        print(f"ratio {name}: {value:.2f}")
    return 0


def drum_builtin(work: Path, root: str, csv_bytes: bytes, rows: int, args, tokens_of, model: str) -> Run:
    """DRUM's own NIM predictor /predictions, sidecar mode, on a code dir with no custom.py."""
    host, port = root.removeprefix("http://").removeprefix("https://").split(":")
    code_dir = work / "builtin"
    code_dir.mkdir()
    params = {"max_tokens": args.max_tokens, "temperature": 0, "prompt_column_name": "promptText",
              # llama-server answers health on /health, not NIM's /v1/health/ready.
              "DR_NIM_HEALTH_ROUTE": "/health" if not args.base_url else "/v1/health/ready"}
    env = {**os.environ, "OPENAI_HOST": host, "OPENAI_PORT": port, "GPU_COUNT": "1",
           **{"MLOPS_RUNTIME_PARAM_" + k: json.dumps({"type": _kind(v), "payload": v}) for k, v in params.items()}}
    server = DrumServer(code_dir, work / "drum-builtin.log", ["--gpu-predictor", "nim", "--sidecar"], env).wait_ready()
    try:
        run = predictions_run("DRUM built-in: /predictions", server.url, csv_bytes, rows, 1, tokens_of)
    finally:
        server.stop()
    if not run.output_tokens:
        raise RuntimeError("the engine reports no token metrics; DRUM built-in throughput cannot be counted")
    return run


def _kind(value) -> str:
    if isinstance(value, dict):
        return "credential"
    return "numeric" if isinstance(value, (int, float)) and not isinstance(value, bool) else "string"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
