"""Benchmark: batch scoring and chat serving against the engine's own limit and DRUM's built-in.

    make bench                                   # embedded engine, shared cores then isolated cores
    make bench ARGS="--base-url http://nim:8000/v1 --api-key $KEY --concurrency 1,2,4,8,16,32,64,128,200,256"
    make bench ARGS="--engine vllm"              # vLLM from .venv-vllm (make test-vllm) on SmolLM2

Everything in one pass hits the same engine with the same prompts (temperature 0):
1. the limit: a direct client, streamed and not streamed, at rising concurrency until throughput
   stops rising (two steps in a row gaining under 5%); then the direct client at the highest level
   within 10% of the best, over ours' own rows, before each of ours' batch runs and after the last:
   each of ours' runs is set against the two limit runs that bracket it;
2. ours, batch: `drum score` and `drum server` /predictions with our score;
3. DRUM built-in: DRUM's NIM predictor /predictions in sidecar mode, with no custom score;
4. ours, serving: streamed chat through `drum server` at concurrency 1 and 8, and the latency
   DRUM adds, from interleaved pairs of short requests (direct, via DRUM, direct, ...).
With --isolate (the default for a local engine) a second pass repeats the runs with the engine
pinned to its own cores and DRUM plus the load client on the others, as on a GPU host.
The last lines are the ratios, for scripts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import throughput

import drum_runs
import report
from loadgen import Run, client_for, make_prompts, measure, paired_added_latency, requests_at, sweep
from machine import REPO, CoreSplit, cpu_seconds, engine_pid, header, local_engine

CHAT_LEVELS = (1, 8)
LIMIT_RUN = "limit: direct, ours' rows"
# After the batch runs llama-server streamed 8 requests at 95 tok/s against 150 to 190 before them (2026-12-03):
# chat through DRUM is set against the direct client just before it, not against the sweep.
CHAT_DIRECT_RUN = "direct, streamed, before chat"
PLATEAU_BAND = 0.1  # twice a sweep step's noise floor (loadgen.PLATEAU_GAIN)
WARM_UP_REQUESTS = 4  # a fresh engine's first requests are slow; not measured


@dataclass
class Phase:
    """Every run of one pass over one engine: `shared` cores or `isolated` ones."""

    mode: str
    streamed: list[Run]
    not_streamed: list[Run]
    plateaued: bool
    ours: Run
    builtin: Run
    chat: list[Run]
    added_latency: dict
    drum_score: Run | None = None
    four_chunks: Run | None = None
    fixed: list[Run] = field(default_factory=list)
    csv_bytes: bytes = b""
    warm: Run | None = None  # ours again on the same server, from the level it learned
    limit_runs: list[Run] = field(default_factory=list)  # direct at the top of the sweep's plateau, ours' rows
    chat_direct: list[Run] = field(default_factory=list)  # direct, streamed, just before each of `chat`

    def batches(self) -> dict[str, Run]:
        """Ours' batch runs in the order they ran: limit_runs[i] and limit_runs[i + 1] bracket the i-th."""
        return {"ours": self.ours, **({"ours-warm": self.warm} if self.warm else {}),
                **({"ours-4-chunks": self.four_chunks} if self.four_chunks else {}),
                **{f"fixed-{run.concurrency}": run for run in self.fixed}}


def cpu_probe(engine: int | None, drum: int | None = None):
    """CPU seconds so far of the engine, DRUM (both with their children) and this load client (its threads)."""
    return lambda: {"engine": cpu_seconds(engine), "drum": cpu_seconds(drum),
                    "client": cpu_seconds(os.getpid(), descendants=False)}


def run_phase(mode: str, base_url: str, model: str, args, work: Path, engine: int | None) -> Phase:
    print(f"\n== {mode} ==", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    client = client_for(base_url, args.api_key)
    levels = [int(c) for c in args.concurrency.split(",")]
    measure("warm-up", client, model, make_prompts(WARM_UP_REQUESTS), 2, args.max_tokens, stream=False)
    streamed, flat_streamed = sweep("direct, streamed", client, model, levels, args.sweep_requests,
                                    args.max_tokens, stream=True, must_include=CHAT_LEVELS,
                                    cpu_probe=cpu_probe(engine))
    # Short runs at low levels swing on shared cores: go at least as far as the streamed sweep's peak.
    streamed_peak = max(streamed, key=lambda run: run.output_token_throughput).concurrency
    not_streamed, flat_plain = sweep("direct, not streamed", client, model, levels, args.sweep_requests,
                                     args.max_tokens, stream=False,
                                     must_include=(1, *(level for level in levels if level <= streamed_peak)),
                                     cpu_probe=cpu_probe(engine))
    prompts = make_prompts(args.prompts)
    best_level = top_of_plateau(streamed + not_streamed)
    limit_runs: list[Run] = []

    def measure_limit() -> None:
        limit_runs.append(limit_run(client, model, prompts, best_level, args.max_tokens, engine))

    measure_limit()
    csv_path = work / "prompts.csv"
    pd.DataFrame({"promptText": prompts}).to_csv(csv_path, index=False)
    tokens_of = drum_runs.engine_tokens_counter(base_url.removesuffix("/v1"))
    values = drum_runs.ours_runtime_params(base_url, model, args.max_tokens, args.max_concurrency, args.api_key)
    score = drum_runs.drum_score_run(work, csv_path, len(prompts), values) if mode == "shared" else None
    csv_bytes, four_chunks, warm = csv_path.read_bytes(), None, None
    throughput.forget_learned(base_url, model)  # ours starts cold, as a new deployment does
    with drum_runs.ours_server(work, values) as server:
        ours = drum_runs.predictions_run("ours: /predictions", server.url, csv_bytes, len(prompts),
                                         args.max_concurrency or 0, tokens_of, cpu_probe(engine, server.process.pid))
        ours.concurrency = args.max_concurrency or throughput.learned_concurrency(server.log_path) or 0
        print(f"  {'ours: /predictions':<28} concurrency {ours.concurrency:>4}: "
              f"{ours.output_token_throughput:8.1f} output tok/s", flush=True)
        measure_limit()
        if mode == "shared":
            warm = drum_runs.predictions_run("ours: /predictions, warm", server.url, csv_bytes, len(prompts),
                                             0, tokens_of, cpu_probe(engine, server.process.pid))
            warm.concurrency = throughput.learned_concurrency(server.log_path) or 0
            print(f"  {warm.name:<28} concurrency {warm.concurrency:>4}: "
                  f"{warm.output_token_throughput:8.1f} output tok/s", flush=True)
            measure_limit()
            four_chunks = throughput.chunks_run(f"ours: {throughput.CHUNKS} chunks at once", server.url, csv_bytes,
                                                len(prompts), throughput.CHUNKS, tokens_of,
                                                cpu_probe(engine, server.process.pid))
            four_chunks.concurrency = throughput.learned_concurrency(server.log_path) or 0
            print(f"  {four_chunks.name:<28} concurrency {four_chunks.concurrency:>4}: "
                  f"{four_chunks.output_token_throughput:8.1f} output tok/s", flush=True)
            measure_limit()
        drum_client = client_for(f"{server.url}/v1")
        measure("warm-up", drum_client, model, make_prompts(WARM_UP_REQUESTS), 2, args.max_tokens, stream=True)
        chat, chat_direct = [], []
        for level in CHAT_LEVELS:
            chat_prompts = make_prompts(requests_at(level, args.sweep_requests))
            chat_direct.append(measure(CHAT_DIRECT_RUN, client, model, chat_prompts, level, args.max_tokens,
                                       stream=True, cpu_probe=cpu_probe(engine)))
            chat.append(measure("chat via DRUM, streamed", drum_client, model, chat_prompts, level, args.max_tokens,
                                stream=True, cpu_probe=cpu_probe(engine, server.process.pid)))
        added = paired_added_latency(base_url, f"{server.url}/v1", model, args.latency_pairs, args.latency_max_tokens)
    fixed = (throughput.fixed_runs(work, values, csv_bytes, len(prompts), tokens_of,
                                   lambda drum: cpu_probe(engine, drum), after_each=measure_limit)
             if mode == "shared" and args.max_concurrency is None else [])
    builtin = drum_runs.drum_builtin_run(work, base_url.removesuffix("/v1"), csv_bytes, len(prompts),
                                         args.max_tokens, tokens_of,
                                         lambda drum: cpu_probe(engine, drum))
    return Phase(mode, streamed, not_streamed, flat_streamed or flat_plain, ours, builtin, chat, added, score,
                 four_chunks, fixed, csv_bytes, warm if mode == "shared" else None, limit_runs, chat_direct)


def top_of_plateau(runs: list[Run]) -> int:
    """The highest level the sweep measured within PLATEAU_BAND of its best: on a plateau more in flight
    costs latency, not throughput, and over a fixed batch it shortens the tail. At the best level alone
    (64) the limit runs came out below ours at 128 to 256, on llama-server and vLLM (2026-12-02)."""
    best = max(run.output_token_throughput for run in runs)
    return max(run.concurrency for run in runs if run.output_token_throughput >= (1 - PLATEAU_BAND) * best)


def limit_run(client, model: str, prompts: list[str], level: int, max_tokens: int, engine: int | None) -> Run:
    """The direct client at the top of the sweep's plateau over ours' own rows: the same work and the same batch tail
    as ours, so the ratio compares like with like. Run before and after each of ours' batch runs: on shared
    cores the same run drifts by a third over the bench (158 to 211 tok/s on 2026-12-02), so each of ours'
    runs is set against the two that bracket it."""
    run = measure(LIMIT_RUN, client, model, prompts, level, max_tokens, stream=False, cpu_probe=cpu_probe(engine))
    print(f"  {LIMIT_RUN:<28} concurrency {level:>4}: {run.output_token_throughput:8.1f} output tok/s", flush=True)
    return run


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/bench.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Reads: the engine at --base-url, or starts --engine with this checkout as DRUM's code directory. "
               "Writes: the tables to stdout, and bench.json and bench.png into --out.")
    parser.add_argument("--prompts", type=int, default=256,
                        help="rows for the batch runs (enough for the adaptive limit's cold start to count)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", default="1,2,4,8,16,32,64,128,256",
                        help="levels for the direct client sweep (past the engine's slots: a queue keeps them busy)")
    parser.add_argument("--sweep-requests", type=int, default=16,
                        help="requests per sweep level (at least twice the level)")
    parser.add_argument("--max-concurrency", type=int,
                        help="a fixed max_concurrency for our batch runs (default: ours at its defaults, the adaptive "
                             "limit, beside fixed 16 and fixed 200)")
    parser.add_argument("--engine-slots", type=int, default=64,
                        help="the local engine's parallel slots (llama-server: at most 64, as the embedded engine)")
    parser.add_argument("--engine-threads", type=int,
                        help="the embedded engine's --threads (default: the number of cores it may use)")
    parser.add_argument("--latency-pairs", type=int, default=200, help="interleaved request pairs for added latency")
    parser.add_argument("--latency-max-tokens", type=int, default=4)
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                        help="also run with the engine on its own cores (local engines only)")
    parser.add_argument("--base-url", help="an OpenAI-compatible engine (a NIM); default: start --engine")
    parser.add_argument("--engine", choices=("embedded", "vllm"), default="embedded",
                        help="the local engine to start when no --base-url is given")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--model", help="model name at --base-url (default: its first model)")
    parser.add_argument("--out", default=str(REPO / "output" / "bench"), help="where bench.json and bench.png go")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="nim-drum-bench-"))
    phases, facts = [], {}
    if args.base_url:
        model = args.model or client_for(args.base_url, args.api_key).models.list().data[0].id
        facts = report.facts(args, header(args.base_url, "external"), args.base_url, model, "external", None)
        report.print_header(facts)
        phases.append(run_phase("shared", args.base_url, model, args, work / "shared", None))
    else:
        splits = [("shared", None)] + ([("isolated", CoreSplit.halves())] if args.isolate else [])
        for mode, split in splits:
            with local_engine(args.engine, args.engine_slots, split, args.engine_threads) as engine:
                if not facts:
                    facts = report.facts(args, header(engine.base_url, args.engine), engine.base_url,
                                         engine.model, args.engine, CoreSplit.halves() if args.isolate else None)
                    report.print_header(facts)
                phases.append(run_phase(mode, engine.base_url, engine.model, args, work / mode,
                                        engine_pid(args.engine)))
    report.finish(facts, phases, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
