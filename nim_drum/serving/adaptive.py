"""The adaptive concurrency limit: finds the engine's throughput knee while a batch runs.

An engine (NIM, vLLM, llama-server) batches the requests it has in flight, so its output tokens/s
rise with concurrency until its batch is full, then flatten while each request's latency keeps
growing (NVIDIA's NIM 1.8 table for Llama-3.1-8B on an H100: 214 tok/s at 1 in flight, 12,215 at
100, 13,348 at 200, 12,965 at 250; docs/throughput.md). The knee moves with the model, the GPU
and the prompt lengths, so no fixed number is right. This controller climbs to it and holds there.

Throughput is measured per level from the requests completed at it, by Little's law: `limit` requests
in flight, each taking the mean latency for the mean output tokens, give limit x tokens / latency
tokens/s. Completions come in waves (requests sent together finish together), so counting them over
a short window swings by 10% and more; each request's own latency does not. A window starts once
the level has settled (a request started at it has finished), takes at least `limit` completions
(half while climbing), and counts only while there was more work than the limit (a batch's tail
says nothing about the engine).
- Climb: double from the start level (128) while each doubling gains at least EFFICIENCY of what a linear
  gain would be; at the first that does not, go back to the level before and hold.
- Hold: every PROBE_EVERY windows probe once, in turn a step up (kept when it gains EFFICIENCY of
  linear) and a step down (kept when it loses less than EFFICIENCY of linear: the same throughput
  with fewer requests in flight is shorter latency for everyone, chat included).
- Back off: a 429 or 503 from the engine (or a retry, which the OpenAI client makes for those) on
  a request sent at the current level cuts the limit by BACKOFF, once per level; an engine that reports
  a queue longer than its batch holds the limit at twice what it runs.
Learned from Netflix's concurrency-limits (Gradient2Limit: an RTT gradient with a queue allowance),
Envoy's adaptive concurrency filter (periodic re-measurement) and AIPerf's ramp-until-no-gain,
turned to throughput, which is what a batch wants. A pure algorithm: the caller passes the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

EFFICIENCY = 0.1  # a step is worth it when it gains at least this share of a linear gain
STEP_UP = 1.25  # a probe's steps, once the climb is over
STEP_DOWN = 0.8
BACKOFF = 0.7
PROBE_EVERY = 6  # windows held between probes
MIN_WINDOW = 8  # completions in the smallest window
QUEUE_ALLOWANCE = 2  # in flight, at most this many times what the engine reports it runs
# Too many in flight costs latency, too few costs throughput, which is what a batch is for: NVIDIA's
# H100 curve gives 95% of its peak at 128 (docs/throughput.md), and an engine whose batch is smaller
# queues the rest, which its queue report then trims (engine_queue). One doubling from the ceiling.
DEFAULT_INITIAL = 128


@dataclass
class Window:
    """The measurement of one level: completions after it settled, and their output tokens."""

    changed_at: float
    settled_at: float | None = None
    completions: int = 0
    tokens: int = 0
    seconds_in_flight: float = 0.0  # the completions' latencies, summed

    def restart(self, now: float) -> None:
        self.settled_at, self.completions, self.tokens, self.seconds_in_flight = now, 0, 0, 0.0

    def add(self, tokens: int, latency: float) -> None:
        self.completions += 1
        self.tokens += tokens
        self.seconds_in_flight += latency

    def throughput(self, in_flight: int) -> float:
        """Little's law: `in_flight` requests, each taking the mean latency for the mean tokens."""
        return in_flight * self.tokens / self.seconds_in_flight if self.seconds_in_flight > 0 else 0.0


@dataclass
class AdaptiveLimit:
    """How many requests may be in flight to one engine; `limit` moves as completions are reported."""

    ceiling: int
    initial: int = DEFAULT_INITIAL
    floor: int = 1
    adaptive: bool = True
    phase: Literal["climb", "hold", "probe"] = "climb"
    limit: int = field(init=False)
    baseline: tuple[int, float] | None = None  # (limit, tokens/s) the current level is measured against
    held_windows: int = 0
    probe_up_next: bool = True
    window: Window = field(default_factory=lambda: Window(0.0))

    def __post_init__(self) -> None:
        self.limit = self._clamped(self.initial if self.adaptive else self.ceiling)

    def finished(self, started: float, now: float, tokens: int, overloaded: bool, saturated: bool) -> None:
        """A request sent at `started` ended at `now` with `tokens` output tokens.

        overloaded: the engine answered 429 or 503 on the way (retried or not). saturated: more work
        was waiting than the limit lets through, so the engine, not the batch, set the pace.
        """
        if not self.adaptive:
            return
        window = self.window
        if overloaded:
            if started >= window.changed_at:
                self._hold(math.floor(self.limit * BACKOFF), now)
            return
        if window.settled_at is None:
            if started >= window.changed_at:
                window.restart(now)  # a request of this level has gone through: measure from here
            return
        if not saturated:
            window.restart(now)
            return
        window.add(tokens, now - started)
        # While climbing, half a level's worth of completions tells a doubling that pays from one that does not.
        needed = self.limit // 2 if self.phase == "climb" else self.limit
        if window.completions >= max(MIN_WINDOW, needed):
            self._decide(window.throughput(self.limit), now)

    def engine_queue(self, queued: int, in_flight: int, now: float) -> None:
        """The engine reports `queued` of our `in_flight` requests waiting beyond its own batch.

        A queue as long as the batch keeps the engine's batch full between our requests (Gradient2's
        queue allowance); a longer one only waits, so the limit holds at QUEUE_ALLOWANCE times what the
        engine runs. Once per level: requests already queued stay queued until they finish, so a report
        taken before the level has settled says nothing new.
        """
        most = (in_flight - queued) * QUEUE_ALLOWANCE
        if self.adaptive and queued > 0 and self.window.settled_at is not None and most < self.limit:
            self._hold(most, now)

    def _decide(self, throughput: float, now: float) -> None:
        if self.phase == "hold":
            self._held(throughput, now)
        elif self.baseline is not None and not self._worth_it(throughput):
            self._hold(self.baseline[0], now)  # the step did not pay: back to where it came from
        elif self.phase == "probe":
            self._hold(self.limit, now)
        else:
            self._step(throughput, self.limit * 2, now)

    def _worth_it(self, throughput: float) -> bool:
        """The measured gain (or loss) against the baseline, next to what a linear curve would give."""
        base_limit, base_throughput = self.baseline or (self.limit, throughput)
        gain = throughput / max(base_throughput, 1e-9) - 1
        return gain >= EFFICIENCY * (self.limit / base_limit - 1)

    def _held(self, throughput: float, now: float) -> None:
        self.held_windows += 1
        self.window.restart(now)
        if self.held_windows < PROBE_EVERY:
            return
        self.held_windows = 0
        step = STEP_UP if self.probe_up_next else STEP_DOWN
        self.probe_up_next = not self.probe_up_next
        self.phase = "probe"
        self._step(throughput, self.limit * step, now)

    def _step(self, throughput: float, target: float, now: float) -> None:
        """Measure `target` against the current level's throughput."""
        target_limit = self._clamped(round(target))
        if target_limit == self.limit:
            self._hold(self.limit, now)
            return
        self.baseline = (self.limit, throughput)
        self._move(target_limit, now)

    def _hold(self, limit: int, now: float) -> None:
        self.phase, self.baseline, self.held_windows = "hold", None, 0
        if self._clamped(limit) != self.limit:
            self._move(self._clamped(limit), now)
        else:
            self.window.restart(now)

    def _move(self, limit: int, now: float) -> None:
        self.limit = limit
        self.window = Window(now)

    def _clamped(self, limit: float) -> int:
        return max(self.floor, min(self.ceiling, int(limit)))
