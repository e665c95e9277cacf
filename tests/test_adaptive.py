"""The adaptive concurrency controller, driven by a model engine on a simulated clock (bench/simulation.py).

An algorithm's own tests: the model engine follows NVIDIA's published H100 curve, and a second one
with its knee elsewhere. Every integration test of scoring uses the real engine.
"""

import pytest

from nim_drum.serving.adaptive import BACKOFF, AdaptiveLimit

from simulation import H100_LLAMA_8B, H100X2_LLAMA_70B, simulate, throughput_at


@pytest.mark.parametrize("curve, tokens", [(H100_LLAMA_8B, 256), (H100X2_LLAMA_70B, 500)])
@pytest.mark.parametrize("chunks", [1, 4])
def test_a_cold_start_reaches_and_holds_the_knee(curve, tokens, chunks):
    outcome = simulate(curve, AdaptiveLimit(ceiling=256), rows=20_000, chunks=chunks, tokens_per_row=tokens)
    # Counting completions per second swings with the waves they finish in; Little's law does not, so
    # the climb and the probes decide on the curve, not on noise (counting them took 0.936 of the 8B plateau on 4 chunks).
    assert outcome.share_of_plateau >= 0.95
    assert outcome.rows_to_90 is not None and outcome.rows_to_90 < 500
    assert throughput_at(curve, outcome.final_limit) >= 0.9 * max(t for _, t in curve)


def test_the_old_fixed_default_takes_a_quarter_of_the_h100_curve():
    outcome = simulate(H100_LLAMA_8B, AdaptiveLimit(ceiling=16, adaptive=False), rows=4000)
    assert outcome.share_of_plateau < 0.3 and outcome.final_limit == 16


def test_it_never_passes_the_ceiling():
    outcome = simulate(H100_LLAMA_8B, AdaptiveLimit(ceiling=48), rows=4000)
    assert outcome.final_limit <= 48 and outcome.share_of_plateau >= 0.9 * throughput_at(H100_LLAMA_8B, 48) / 13348


def test_an_overloaded_answer_cuts_the_limit_once_per_level():
    control = AdaptiveLimit(ceiling=256, initial=100)
    control.finished(started=1.0, now=2.0, tokens=10, overloaded=True, saturated=True)
    assert control.limit == int(100 * BACKOFF)
    control.finished(started=1.5, now=2.1, tokens=10, overloaded=True, saturated=True)  # sent at the old level
    assert control.limit == int(100 * BACKOFF)


def test_requests_the_engine_queues_hold_the_limit_at_what_it_runs_once_per_level():
    control = AdaptiveLimit(ceiling=256, initial=256)
    control.engine_queue(192, in_flight=256, now=0.5)  # before the level settled: stale, ignored
    assert control.limit == 256
    control.finished(started=1.0, now=2.0, tokens=10, overloaded=False, saturated=True)  # settled
    control.engine_queue(128, in_flight=256, now=2.4)  # a queue as long as the batch: allowed
    assert control.limit == 256
    control.engine_queue(192, in_flight=256, now=2.5)  # runs 64: at most twice that in flight
    assert control.limit == 128
    control.engine_queue(180, in_flight=244, now=3.0)  # the same queue, still draining: not lower again
    assert control.limit == 128


def test_a_fixed_limit_never_moves():
    control = AdaptiveLimit(ceiling=200, adaptive=False)
    for i in range(1000):
        control.finished(started=i, now=i + 1, tokens=100, overloaded=i % 7 == 0, saturated=True)
    control.engine_queue(50, in_flight=200, now=2000)
    assert control.limit == 200


def test_a_batch_tail_teaches_it_nothing():
    control = AdaptiveLimit(ceiling=256, initial=16)
    for i in range(500):  # completions with nothing waiting: the batch, not the engine, set the pace
        control.finished(started=i, now=i + 1, tokens=1, overloaded=False, saturated=False)
    assert control.limit == 16
