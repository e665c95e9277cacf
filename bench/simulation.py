"""A SIMULATION, on paper: the product's own concurrency controller driving a model engine on a simulated clock.

No engine runs here. The model engine's throughput follows a published curve of output tokens/s by
requests in flight, and every request in flight progresses at an equal share of it (processor
sharing, as a batching engine does). The controller under test is nim_drum.serving.adaptive's
AdaptiveLimit, the code `score` uses; the dispatch mimics serving/limiter.py: requests are granted
while fewer than the limit are in flight, chunk after chunk in turn. Used only to check the
controller; every integration test and every other benchmark figure uses a real engine.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections import deque
from dataclasses import dataclass

from nim_drum.serving.adaptive import AdaptiveLimit

# NVIDIA NIM 1.8.0, Llama-3.1-8B-Instruct on one H100, output tokens/s by concurrency
# (docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance; docs/throughput.md).
H100_LLAMA_8B = ((1, 214.56), (25, 4679.0), (100, 12215.0), (150, 12989.0), (200, 13348.0), (250, 12965.0))
# Llama-3.3-70B on 2 x H100 (5,000 tokens in, 500 out): NVIDIA gives a plateau of about 920 tok/s
# from concurrency 100; the points below 100 are an ASSUMED concave rise to it, for a knee elsewhere.
H100X2_LLAMA_70B = ((1, 28.0), (10, 250.0), (25, 520.0), (50, 780.0), (100, 920.0), (150, 925.0),
                    (200, 922.0), (250, 915.0))
CURVES = {"llama-3.1-8b on H100 (NVIDIA NIM 1.8)": (H100_LLAMA_8B, 256),
          "llama-3.3-70b on 2xH100 (plateau NVIDIA's, rise assumed)": (H100X2_LLAMA_70B, 500)}


def throughput_at(curve: tuple[tuple[int, float], ...], in_flight: int) -> float:
    """Output tokens/s with `in_flight` requests: the curve, linear between its points, flat past its last."""
    if in_flight <= 0:
        return 0.0
    levels = [c for c, _ in curve]
    if in_flight <= levels[0]:
        return curve[0][1] * in_flight / levels[0]
    if in_flight >= levels[-1]:
        return curve[-1][1]
    i = bisect.bisect_left(levels, in_flight)
    (c0, t0), (c1, t1) = curve[i - 1], curve[i]
    return t0 + (t1 - t0) * (in_flight - c0) / (c1 - c0)


@dataclass
class Outcome:
    seconds: float
    tokens: int
    share_of_plateau: float
    rows_to_90: int | None  # rows finished before a window of completions first ran at 90% of the plateau
    final_limit: int


def simulate(curve, control: AdaptiveLimit, rows: int, chunks: int = 1, tokens_per_row: int = 256,
             seed: int = 7) -> Outcome:
    """Run `rows` requests, split in `chunks` chunks sent at once, through the model engine under `control`."""
    rng = random.Random(seed)
    pending = [deque(round(tokens_per_row * rng.uniform(0.5, 1.5)) for _ in range(rows // chunks))
               for _ in range(chunks)]
    plateau = max(t for _, t in curve)
    now, served = 0.0, 0.0  # simulated seconds; tokens each in-flight request has received since time 0
    in_flight: list[tuple[float, float, int]] = []  # (served mark at which it finishes, started, tokens)
    done_rows, done_tokens, turn = 0, 0, 0
    recent: deque[tuple[float, int]] = deque()
    rows_to_90 = None
    while True:
        while len(in_flight) < control.limit and any(pending):
            while not pending[turn % chunks]:
                turn += 1
            tokens = pending[turn % chunks].popleft()
            turn += 1
            heapq.heappush(in_flight, (served + tokens, now, tokens))
        if not in_flight:
            break
        rate = throughput_at(curve, len(in_flight)) / len(in_flight)  # tokens/s for each request in flight
        finish_mark, started, tokens = heapq.heappop(in_flight)
        now += (finish_mark - served) / rate
        served = finish_mark
        done_rows, done_tokens = done_rows + 1, done_tokens + tokens
        control.finished(started, now, tokens, overloaded=False, saturated=any(pending))
        recent.append((now, tokens))
        while len(recent) > 200:
            recent.popleft()
        if rows_to_90 is None and len(recent) == 200:
            window_rate = sum(t for _, t in recent) / max(recent[-1][0] - recent[0][0], 1e-9)
            if window_rate >= 0.9 * plateau:
                rows_to_90 = done_rows
    return Outcome(now, done_tokens, done_tokens / now / plateau, rows_to_90, control.limit)


def table(rows: int = 20_000) -> list[dict]:
    """Every curve, one chunk and 4 at once, adaptive (cold start) beside fixed 16 and fixed 200."""
    results = []
    for name, (curve, tokens_per_row) in CURVES.items():
        for chunks in (1, 4):
            for label, control in (("adaptive (default)", AdaptiveLimit(ceiling=256)),
                                   ("fixed 16", AdaptiveLimit(ceiling=16, adaptive=False)),
                                   ("fixed 200", AdaptiveLimit(ceiling=200, adaptive=False))):
                outcome = simulate(curve, control, rows, chunks, tokens_per_row)
                results.append({"curve": name, "chunks": chunks, "limit": label, "outcome": outcome})
    return results


def report(results: list[dict]) -> list[str]:
    lines = ["SIMULATION (a model engine on published curves, not a measurement): 20,000 rows, cold start",
             f"  {'curve':<58}{'chunks':>7}  {'limit':<20}{'share':>7}{'rows to 90%':>13}{'final':>7}{'seconds':>9}"]
    for r in results:
        o = r["outcome"]
        lines.append(f"  {r['curve']:<58}{r['chunks']:>7}  {r['limit']:<20}{o.share_of_plateau:>7.3f}"
                     f"{o.rows_to_90 if o.rows_to_90 is not None else '-':>13}{o.final_limit:>7}{o.seconds:>9.0f}")
    adaptive = [r["outcome"] for r in results if r["limit"].startswith("adaptive")]
    lines.append(f"simulated share of plateau: {min(o.share_of_plateau for o in adaptive):.3f}")
    reached = [o.rows_to_90 for o in adaptive]
    lines.append(f"simulated rows to 90%: {max(reached) if None not in reached else 'never'}")
    return lines


if __name__ == "__main__":
    print("\n".join(report(table())))
