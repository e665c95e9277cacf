"""A bounded load test: 8 concurrent OpenAI clients for 60 s against `drum server` in local mode."""

import json
import statistics
import threading
import time

import openai
import pytest

from helpers import REPO

CLIENTS = 8
SECONDS = 60
MAX_TOKENS = 32


@pytest.mark.load
def test_eight_clients_for_a_minute_with_no_failures(code_dir, drum_server):
    server = drum_server(code_dir)
    latencies, tokens, failures = [], [], []
    deadline = time.monotonic() + SECONDS

    def client_loop(number):
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                reply = client.chat.completions.create(
                    messages=[{"role": "user", "content": f"Tell me a fact about the number {number}."}],
                    model="", max_tokens=MAX_TOKENS,
                )
            except openai.OpenAIError as err:
                failures.append(repr(err))
                continue
            latencies.append(time.monotonic() - started)
            tokens.append(reply.usage.completion_tokens)

    started = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    report = {
        "clients": CLIENTS, "seconds": round(elapsed, 1), "requests": len(latencies), "failed": len(failures),
        "p50_latency_s": round(statistics.median(latencies), 3),
        "p99_latency_s": round(statistics.quantiles(latencies, n=100)[98], 3) if len(latencies) > 1 else None,
        "tokens_per_s": round(sum(tokens) / elapsed, 1),
    }
    (REPO / "output").mkdir(exist_ok=True)
    (REPO / "output" / "load-test.json").write_text(json.dumps(report, indent=2))
    print(f"\nload test: {report}")
    assert not failures, failures[:5]
    assert len(latencies) >= CLIENTS
