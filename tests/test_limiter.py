"""The engine-wide limiter under real threads: never more than the limit in flight, turns shared fairly."""

import threading
import time

from nim_drum.serving.adaptive import DEFAULT_INITIAL, AdaptiveLimit
from nim_drum.serving.limiter import EngineLimiter


def fixed(limit):
    return EngineLimiter(AdaptiveLimit(ceiling=limit, adaptive=False))


def test_never_more_than_the_limit_in_flight_across_many_owners():
    limiter, peak, lock, now = fixed(5), [0], threading.Lock(), [0]

    def work(owner):
        for _ in range(20):
            permit = limiter.acquire(owner)
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.001)
            with lock:
                now[0] -= 1
            limiter.release(permit)

    threads = [threading.Thread(target=work, args=(f"chunk-{i % 4}",)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 5 and limiter.peak_in_flight == 5 and limiter.in_flight == 0


def test_owners_take_turns_so_a_later_chunk_does_not_wait_for_an_earlier_one():
    limiter = fixed(1)
    held = limiter.acquire("first")
    order = []

    def want(owner):
        permit = limiter.acquire(owner)
        order.append(owner)
        limiter.release(permit)

    waiting = [threading.Thread(target=want, args=("first",)) for _ in range(5)]
    for thread in waiting:
        thread.start()
    time.sleep(0.1)
    late = threading.Thread(target=want, args=("second",))
    late.start()
    time.sleep(0.1)
    limiter.release(held)
    for thread in [*waiting, late]:
        thread.join()
    assert order.index("second") <= 1  # served within the first turns, not after the earlier chunk's five


def test_a_wait_that_times_out_gives_none_and_leaves_no_ghost():
    limiter = fixed(1)
    held = limiter.acquire("a")
    assert limiter.acquire("b", timeout=0.05) is None
    limiter.release(held)
    assert limiter.in_flight == 0 and limiter.acquire("c", timeout=0.05) is not None


def test_a_restarted_process_starts_from_the_level_it_learned(tmp_path, monkeypatch):
    from nim_drum.serving import engine_limits

    from helpers import load_settings

    monkeypatch.setattr(engine_limits, "learned_file", lambda: tmp_path / "learned.json")
    monkeypatch.setattr(engine_limits, "_limiters", {})
    settings = load_settings()
    first = engine_limits.limiter_for("http://engine:8000/v1", "m", settings)
    assert first.limit == DEFAULT_INITIAL  # nothing learned yet: the start level
    first.on_change(96)  # what the limiter reports when the controller moves
    monkeypatch.setattr(engine_limits, "_limiters", {})  # a new process
    assert engine_limits.limiter_for("http://engine:8000/v1", "m", settings).limit == 96
    assert engine_limits.limiter_for("http://other:8000/v1", "m", settings).limit == DEFAULT_INITIAL


def test_the_engines_own_queue_is_read_from_each_engines_metrics():
    from nim_drum.serving.engine_limits import queued_requests

    llama = "# HELP llamacpp:requests_deferred x\nllamacpp:requests_processing 8\nllamacpp:requests_deferred 3\n"
    vllm = 'vllm:num_requests_running{model_name="m"} 256.0\nvllm:num_requests_waiting{model_name="m"} 12.0\n'
    nim1 = "num_requests_running 100\nnum_requests_waiting 7\n"
    assert [queued_requests(text) for text in (llama, vllm, nim1)] == [3, 12, 7]
    assert queued_requests("# no queue here\nprocess_cpu_seconds_total 4.2\n") is None
