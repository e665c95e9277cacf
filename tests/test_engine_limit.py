"""One concurrency limit per engine for the whole DRUM process: concurrent chunks and chat share it, fairly.

A counting proxy (tests/faultproxy.py) between `drum server` and the real engine sees every request
in flight. Three chunks are posted at once, as DataRobot's batch API does with num_concurrent 3,
beside streamed chat requests.
"""

import threading

import openai
import pytest
import requests

from faultproxy import FaultProxy
from helpers import engine_root, external_params, make_code_dir, start_drum_server

LIMIT = 4
CHUNKS, ROWS = 3, 10


@pytest.fixture
def proxy(engine):
    proxy = FaultProxy(engine_root(engine))
    yield proxy
    proxy.close()


def post_chunk(server, chunk, answers):
    body = "promptText\n" + "".join(f"Say hi. (chunk {chunk} row {row})\n" for row in range(ROWS))
    response = requests.post(f"{server.url}/predictions/", data=body.encode(),
                             headers={"Content-Type": "text/csv"}, timeout=300)
    answers[chunk] = response


def chat_twice(server, answers):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    for _ in range(2):
        stream = client.chat.completions.create(model="datarobot-deployed-llm", messages=[{"role": "user", "content": "Say hi. (chat)"}],
                                                max_tokens=8, stream=True)
        answers.append("".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices))


def test_concurrent_chunks_and_chat_never_exceed_the_engine_limit_and_take_turns(proxy, tmp_path):
    values = external_params(proxy, adaptive_concurrency=False, max_concurrency=LIMIT, request_timeout=120)
    server = start_drum_server(make_code_dir(tmp_path / "code"), tmp_path / "drum.log", values)
    answers, chats = {}, []
    try:
        threads = [threading.Thread(target=post_chunk, args=(server, chunk, answers)) for chunk in range(CHUNKS)]
        threads.append(threading.Thread(target=chat_twice, args=(server, chats)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        server.stop()
    assert all(answers[c].status_code == 200 for c in range(CHUNKS)), {c: r.text[:300] for c, r in answers.items()}
    assert all(len(answers[c].json()["predictions"]) == ROWS for c in range(CHUNKS))
    assert len(chats) == 2 and all(chats)
    # Per-chunk pools would have let CHUNKS x LIMIT requests reach the engine at once.
    assert 2 <= proxy.peak_in_flight <= LIMIT
    # Turns: every chunk had a request sent before any chunk had sent all of its own.
    order = [a.body for a in proxy.attempts if "chunk" in a.body]
    firsts = [next(i for i, body in enumerate(order) if f"(chunk {c} " in body) for c in range(CHUNKS)]
    lasts = [max(i for i, body in enumerate(order) if f"(chunk {c} " in body) for c in range(CHUNKS)]
    assert max(firsts) < min(lasts), (firsts, lasts)
