"""The report: header facts, the ratios, the tables (plain and markdown), the JSON, the plot and the script lines."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from loadgen import Run

OURS_OVER_LIMIT_TOLERANCE = 1.02  # above this, the direct client's limit runs missed the engine's limit


def facts(args, machine: dict, base_url: str, model: str, kind: str, split) -> dict:
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            **machine, "engine": base_url, "engine_kind": kind, "model": model, "prompts": args.prompts,
            "max_tokens": args.max_tokens, "sweep_requests": args.sweep_requests,
            "max_concurrency": args.max_concurrency, "engine_slots": None if kind == "external" else args.engine_slots,
            "engine_threads": "n/a" if kind == "external" else args.engine_threads or "one per core it may use",
            "isolation": split.describe() if split else None}


def print_header(facts: dict) -> None:
    gpus = "; ".join(facts["gpus"]) or "none"
    print(f"date: {facts['date']}\nmachine: {facts['machine']}, {facts['cpus']} CPUs ({facts['cpus_usable']} usable), "
          f"{facts['cpu_model']}\nGPU: {gpus}\nengine: {facts['engine_kind']} {facts['engine_version']} at "
          f"{facts['engine']}, model {facts['model']}, slots {facts['engine_slots'] or 'n/a'}, "
          f"threads {facts['engine_threads']}\n"
          f"DRUM: {facts['drum_version']}\nprompts: {facts['prompts']} max_tokens: {facts['max_tokens']} "
          f"our max_concurrency: {facts['max_concurrency'] or 'default (adaptive)'}\nisolation: {facts['isolation'] or 'off'}", flush=True)


def ratios(phase) -> dict:
    direct = phase.streamed + phase.not_streamed
    best = max(direct, key=lambda run: run.output_token_throughput)
    limit = combined(phase.limit_runs) or best
    one_at_a_time = next(r for r in phase.not_streamed if r.concurrency == 1)
    direct_before_chat = {r.concurrency: r for r in phase.chat_direct}
    ceiling = limit.output_token_throughput / one_at_a_time.output_token_throughput
    ours_builtin = phase.ours.output_token_throughput / phase.builtin.output_token_throughput
    return {
        "limit": {"output_token_throughput": round(limit.output_token_throughput, 1),
                  "concurrency": limit.concurrency, "mode": limit.name, "sweep_flattened": phase.plateaued},
        "ours/limit": phase.ours.output_token_throughput / bracketing_limit(phase, 0, limit),
        "sweep best/limit": best.output_token_throughput / limit.output_token_throughput,
        "ceiling": ceiling,
        "ours/drum-builtin": ours_builtin,
        "captured": ours_builtin / ceiling,
        **{f"chat-drum/direct@{c.concurrency}":
           c.output_token_throughput / direct_before_chat[c.concurrency].output_token_throughput for c in phase.chat},
        "added latency p50 ms": phase.added_latency["p50_ms"],
        "added latency p99 ms": phase.added_latency["p99_ms"],
        **throughput_ratios(phase, limit),
    }


def combined(runs: list[Run]) -> Run | None:
    """One run's worth of several: their tokens over their seconds."""
    if not runs:
        return None
    return Run(runs[0].name, runs[0].concurrency, sum(r.requests for r in runs), sum(r.seconds for r in runs),
               sum(r.output_tokens for r in runs))


def bracketing_limit(phase, index: int, fallback: Run) -> float:
    """The limit for ours' index-th batch run: the limit runs just before and just after it, combined.

    Not the best of the sweep: its short runs (twice the level) swing by 10% on shared cores, and the
    best of many noisy runs is biased high; over ours' rows the direct client has the same batch tail.
    """
    neighbours = combined(phase.limit_runs[index:index + 2]) or fallback
    return neighbours.output_token_throughput


def throughput_ratios(phase, limit: Run) -> dict:
    """Ours at the defaults, 4 chunks at once and the fixed limits against the limit; a 5 MB chunk's seconds."""
    from throughput import five_mb_chunk_seconds

    runs = phase.batches()
    figures = {f"{name}/limit": run.output_token_throughput / bracketing_limit(phase, index, limit)
               for index, (name, run) in enumerate(runs.items()) if name != "ours"}
    figures["learned concurrency"] = (phase.four_chunks or phase.ours).concurrency
    figures.update({f"5 MB chunk s, {name}": five_mb_chunk_seconds(run, phase.csv_bytes) for name, run in runs.items()})
    return figures


def finish(facts: dict, phases: list, out: Path) -> None:
    by_mode = {phase.mode: (phase, ratios(phase)) for phase in phases}
    for phase, figures in by_mode.values():
        print(f"\n{phase.mode}:")
        print_table(all_runs(phase))
        print_figures(figures)
    print("\nmarkdown, for the README:\n")
    print(markdown(by_mode))
    report = {**facts, "phases": {mode: {"runs": [r.summary() for r in all_runs(p)], "added_latency": p.added_latency,
                                         "ratios": _rounded(f)} for mode, (p, f) in by_mode.items()}}
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    from plot import plot

    plot(facts, phases, out / "bench.png")
    print(f"\nresults: {out / 'bench.json'}, {out / 'bench.png'}\n")
    from simulation import report as simulation_report
    from simulation import table as simulation_table

    simulated = simulation_report(simulation_table())
    print("\n".join(simulated[:-2]) + "\n")
    print_script_lines(by_mode)
    print("\n".join(simulated[-2:]))


def all_runs(phase) -> list:
    """Every run in the order it ran: each of ours' batch runs between the two limit runs that bracket it."""
    batches = list(phase.batches().values())
    interleaved = [run for pair in zip(phase.limit_runs, batches, strict=False) for run in pair]
    return [*phase.streamed, *phase.not_streamed, *([phase.drum_score] if phase.drum_score else []),
            *interleaved, *phase.limit_runs[len(batches):], phase.builtin,
            *[run for pair in zip(phase.chat_direct, phase.chat, strict=True) for run in pair]]


def print_table(runs: list) -> None:
    head = f"{'run':<28}{'conc':>5}{'req':>5}{'sec':>8}{'req/s':>8}{'out tok/s':>11}{'TTFT ms':>9}{'ITL ms':>8}{'lat ms':>9}  CPU cores busy"
    print(head + "\n" + "-" * len(head))
    for s in (run.summary() for run in runs):
        print(f"{s['name']:<28}{s['concurrency']:>5}{s['requests']:>5}{s['seconds']:>8.1f}{s['request_throughput']:>8.2f}"
              f"{s['output_token_throughput']:>11.1f}{_fmt(s['time_to_first_token_ms']):>9}"
              f"{_fmt(s['inter_token_latency_ms']):>8}{_fmt(s['request_latency_ms']):>9}  {_cpu(s)}")


def print_figures(figures: dict) -> None:
    limit = figures["limit"]
    print(f"the limit: {limit['output_token_throughput']} output tok/s, {limit['mode']} at concurrency "
          f"{limit['concurrency']}" + ("" if limit["sweep_flattened"] else
                                       " (STILL RISING at the last level: add higher --concurrency levels)"))
    print(f"ceiling (limit / one-at-a-time not streamed): {figures['ceiling']:.2f}; ours/drum-builtin: "
          f"{figures['ours/drum-builtin']:.2f}; captured: {figures['captured']:.2f}")
    print(f"latency DRUM adds to one short chat request: p50 {figures['added latency p50 ms']:.1f} ms, "
          f"p99 {figures['added latency p99 ms']:.1f} ms")


def markdown(by_mode: dict) -> str:
    lines = ["| Cores | Run | Concurrency | Requests/s | Output tokens/s | TTFT ms | ITL ms | CPU cores busy |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, (phase, _) in by_mode.items():
        for s in (run.summary() for run in all_runs(phase)):
            lines.append(f"| {mode} | {s['name']} | {s['concurrency']} | {s['request_throughput']:.2f} | "
                         f"{s['output_token_throughput']:.1f} | {_fmt(s['time_to_first_token_ms'])} | "
                         f"{_fmt(s['inter_token_latency_ms'])} | {_cpu(s)} |")
    modes = list(by_mode)
    lines += ["", "| Figure | " + " | ".join(modes) + " |", "| --- |" + " --- |" * len(modes)]
    first = by_mode[modes[0]][1]
    lines.append("| the limit (output tok/s, mode, concurrency) | " + " | ".join(
        f"{f['limit']['output_token_throughput']}, {f['limit']['mode']}, {f['limit']['concurrency']}"
        for _, f in by_mode.values()) + " |")
    for key in (k for k in first if k != "limit"):
        lines.append(f"| {key} | " + " | ".join(f"{f[key]:.2f}" if key in f else "" for _, f in by_mode.values())
                     + " |")
    return "\n".join(lines)


def print_script_lines(by_mode: dict) -> None:
    shared = by_mode["shared"][1]
    isolated = by_mode["isolated"][1] if "isolated" in by_mode else None
    for mode, (_, figures) in by_mode.items():
        if figures["ours/limit"] > OURS_OVER_LIMIT_TOLERANCE:
            print(f"MEASUREMENT ERROR ({mode}): ours/limit is {figures['ours/limit']:.2f}, above "
                  f"{OURS_OVER_LIMIT_TOLERANCE}: the limit runs did not reach the engine's limit (noise from other "
                  "work on the machine, or a sweep that peaked at the wrong level)")
    for key in ("ceiling", "ours/drum-builtin", "chat-drum/direct@1"):
        print(f"ratio {key}: {shared[key]:.2f}")
    if isolated:
        print(f"ratio chat-drum/direct@1 isolated: {isolated['chat-drum/direct@1']:.2f}")
        print(f"added latency isolated p50 ms: {isolated['added latency p50 ms']:.1f}")
        print(f"added latency isolated p99 ms: {isolated['added latency p99 ms']:.1f}")
    print(f"ratio ours/limit: {shared['ours/limit']:.2f}")
    for key in ("ours-warm/limit", "ours-4-chunks/limit", "fixed-16/limit", "fixed-200/limit"):
        if key in shared:
            print(f"ratio {key}: {shared[key]:.2f}")
    print(f"learned concurrency: {shared['learned concurrency']}")
    print(f"ratio captured: {shared['captured']:.2f}")
    print(f"ratio chat-drum/direct@8: {shared['chat-drum/direct@8']:.2f}")
    print(f"ratio chat-drum/direct@8 isolated: {isolated['chat-drum/direct@8']:.2f}" if isolated else
          "ratio chat-drum/direct@8 isolated: nan")
    print(f"added latency p50 ms: {shared['added latency p50 ms']:.1f}")
    print(f"added latency p99 ms: {shared['added latency p99 ms']:.1f}")


def _rounded(figures: dict) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}


def _cpu(summary: dict) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in summary["cpu_cores_busy"].items() if cores >= 0.005)


def _fmt(value) -> str:
    return "" if value is None else f"{value:.1f}"
