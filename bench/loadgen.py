"""Load generation: OpenAI clients at a fixed concurrency, the concurrency sweep, and paired latency probes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import openai

TOPICS = ["the ocean", "volcanoes", "honey bees", "the moon", "bicycles", "coffee", "glaciers", "owls"]
TASKS = ["Write a short story about {}.", "Explain {} to a child.", "List facts about {}.",
         "Describe {} in detail.", "Write a poem about {}.", "Give advice about {}.",
         "Compare {} with mountains.", "Tell the history of {}."]
PLATEAU_GAIN = 0.05  # a sweep step gaining less than this counts as flat
PLATEAU_STEPS = 2  # this many flat steps in a row end the sweep


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
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # by process group, while this run ran

    @property
    def output_token_throughput(self) -> float:
        return self.output_tokens / self.seconds

    def summary(self) -> dict:
        def mean(values):
            return round(statistics.fmean(values), 1) if values else None

        return {
            "name": self.name, "concurrency": self.concurrency, "requests": self.requests,
            "seconds": round(self.seconds, 2), "output_tokens": self.output_tokens,
            "request_throughput": round(self.requests / self.seconds, 3),
            "output_token_throughput": round(self.output_token_throughput, 1),
            "time_to_first_token_ms": mean(self.ttft_ms), "inter_token_latency_ms": mean(self.itl_ms),
            "request_latency_ms": mean(self.latency_ms),
            "cpu_cores_busy": {name: round(cpu / self.seconds, 2) for name, cpu in self.cpu_seconds.items()},
        }


def make_prompts(count: int) -> list[str]:
    return [TASKS[i % len(TASKS)].format(TOPICS[(i // len(TASKS)) % len(TOPICS)]) + f" ({i})" for i in range(count)]


def client_for(base_url: str, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)


def stream_one(client: openai.OpenAI, model: str, prompt: str, max_tokens: int) -> tuple[float, float | None, list, int]:
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
    ttft = (arrivals[0] - started) * 1000 if arrivals else None
    itl = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:], strict=False)]
    return (time.perf_counter() - started) * 1000, ttft, itl, tokens or len(arrivals)


def complete_one(client: openai.OpenAI, model: str, prompt: str, max_tokens: int) -> tuple[float, None, list, int]:
    started = time.perf_counter()
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0,
    )
    return (time.perf_counter() - started) * 1000, None, [], response.usage.completion_tokens


def measure(name: str, client, model: str, prompts: list[str], concurrency: int, max_tokens: int,
            stream: bool, cpu_probe: Callable[[], dict] = dict) -> Run:
    """Send every prompt, `concurrency` in flight at a time, streamed or not; cpu_probe gives CPU seconds so far."""
    one = stream_one if stream else complete_one
    cpu_before = cpu_probe()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda prompt: one(client, model, prompt, max_tokens), prompts))
    run = Run(name, concurrency, len(prompts), time.perf_counter() - started, sum(r[3] for r in results))
    run.cpu_seconds = {key: spent - cpu_before[key] for key, spent in cpu_probe().items()}
    for latency, ttft, itl, _ in results:
        run.latency_ms.append(latency)
        if ttft is not None:
            run.ttft_ms.append(ttft)
        run.itl_ms.extend(itl)
    return run


def requests_at(concurrency: int, minimum: int) -> int:
    """At least two waves of requests at every level, so the last wave's tail does not dominate."""
    return max(minimum, 2 * concurrency)


def sweep(name: str, client, model: str, levels: list[int], min_requests: int, max_tokens: int,
          stream: bool, must_include: tuple[int, ...] = (), cpu_probe: Callable[[], dict] = dict) -> tuple[list[Run], bool]:
    """Measure at each level until throughput stops rising; return the runs and whether it stopped rising.

    The curve is flat after PLATEAU_STEPS successive steps that each gain less than PLATEAU_GAIN;
    levels in `must_include` are measured even after that (the chat comparisons need them).
    """
    runs: list[Run] = []
    flat_steps = 0
    for level in sorted(set(levels) | set(must_include)):
        if flat_steps >= PLATEAU_STEPS and level not in must_include:
            continue
        run = measure(name, client, model, make_prompts(requests_at(level, min_requests)), level, max_tokens, stream,
                      cpu_probe)
        print(f"  {name:<28} concurrency {level:>4}: {run.output_token_throughput:8.1f} output tok/s", flush=True)
        if runs and flat_steps < PLATEAU_STEPS:
            gain = run.output_token_throughput / max(r.output_token_throughput for r in runs) - 1
            flat_steps = flat_steps + 1 if gain < PLATEAU_GAIN else 0
        runs.append(run)
    return runs, flat_steps >= PLATEAU_STEPS


def paired_added_latency(direct_url: str, drum_url: str, model: str, pairs: int, max_tokens: int) -> dict:
    """Interleave direct and via-DRUM requests (direct, DRUM, direct, ...); percentiles of each pair's difference.

    Every request sends the same prompt, so that the engine does the same (cached) work on both paths.
    """
    direct, via_drum = client_for(direct_url), client_for(drum_url)
    prompt = "Say hello."
    for _ in range(8):  # warm both paths and the engine's prompt cache
        complete_one(direct, model, prompt, max_tokens)
        complete_one(via_drum, model, prompt, max_tokens)
    differences = []
    for _ in range(pairs):
        direct_ms = complete_one(direct, model, prompt, max_tokens)[0]
        drum_ms = complete_one(via_drum, model, prompt, max_tokens)[0]
        differences.append(drum_ms - direct_ms)
    p50, p99 = np.percentile(differences, [50, 99])
    return {"pairs": pairs, "max_tokens": max_tokens, "p50_ms": round(float(p50), 2), "p99_ms": round(float(p99), 2)}
