"""The batch features through the real `drum server` /predictions/, in front of the real engine.

One server has them all on: a prompt template, a JSON Schema and temperature 0 (deduplication);
another has DRUM_CLIENT_REQUEST_TIMEOUT 6, from which the default deadline is 5 s. The fault proxy
between them and the engine counts requests and holds or fails chosen rows.
"""

import json

import pytest
import requests

from faultproxy import FaultProxy
from helpers import engine_root, external_params, make_code_dir, start_drum_server

TEMPLATE = "{question} Reply as JSON with the key answer."
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture(scope="module")
def proxy(engine):
    proxy = FaultProxy(engine_root(engine))
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def server(proxy, tmp_path_factory):
    directory = tmp_path_factory.mktemp("batch-server")
    values = external_params(
        proxy, prompt_template=TEMPLATE, response_format=json.dumps(SCHEMA), max_tokens=48, request_timeout=120,
    )
    server = start_drum_server(make_code_dir(directory / "code"), directory / "drum.log", values)
    yield server
    server.stop()


def predict(server, csv_text):
    return requests.post(
        f"{server.url}/predictions/", data=csv_text.encode(), headers={"Content-Type": "text/csv"}, timeout=120
    )


def rows(response):
    assert response.status_code == 200, response.text
    body = response.json()
    extra = body["extraModelOutput"]
    return body["predictions"], [dict(zip(extra["columns"], row, strict=False)) for row in extra["data"]]


def test_templated_json_answers_with_duplicates_sent_once(server, proxy):
    questions = ["What is the capital of France? (q1)", "What is 2 + 2? (q2)"] * 3
    predictions, extras = rows(predict(server, "question,id\n" + "".join(f"{q},{i}\n" for i, q in enumerate(questions))))
    assert len(predictions) == 6 and [e["error"] for e in extras] == [""] * 6
    assert all(isinstance(json.loads(p).get("answer"), str) for p in predictions), predictions
    assert len(proxy.attempts_matching("(q1)")) == 1 and len(proxy.attempts_matching("(q2)")) == 1
    assert all(e["latency_ms"] > 0 and e["retries"] == 0 for e in extras)


def test_the_retries_column_counts_a_rows_retries(server, proxy):
    proxy.inject("503", match="(r1)")
    _, extras = rows(predict(server, "question\nSay hi. (r0)\nSay hi. (r1)\n"))
    faults = [a.fault for a in proxy.attempts_matching("(r1)")]
    assert [e["retries"] for e in extras] == [0, 1] and [e["error"] for e in extras] == ["", ""], (extras, faults)


def test_rows_past_the_default_deadline_say_what_would_fit(proxy, tmp_path):
    # Deadline: 90% of DRUM's request timeout, 5 s; DRUM's own chat client must give up before it.
    values = external_params(proxy, DRUM_CLIENT_REQUEST_TIMEOUT=6, DRUM_OPENAI_CLIENT_TIMEOUT=5, request_timeout=120)
    server = start_drum_server(make_code_dir(tmp_path / "code"), tmp_path / "drum.log", values,
                               args=["--logging-level", "info"])
    try:
        proxy.inject("slow", match="(slow)", seconds=10)
        predictions, extras = rows(predict(server, "promptText\nSay hi. (fast)\nSay hi. (slow)\n"))
    finally:
        server.stop()
    # 1 row in 5 s: 0.2 rows/s; 2 rows need ceil(2 / 0.2 / 0.8) = 13 s, a 15 s DRUM timeout (13 / 0.9).
    assert len(predictions) == 2 and predictions[1] == "" and predictions[0] != "", extras
    assert extras[1]["error"].startswith("deadline exceeded after 5 s: 1 of 2 rows finished; at 0.20 rows/s, a chunk fits")
    assert extras[1]["error"].endswith("or set DRUM_CLIENT_REQUEST_TIMEOUT to 15; rerun these rows")
    assert "set DRUM_CLIENT_REQUEST_TIMEOUT to 15" in (tmp_path / "drum.log").read_text()  # the summary line too


def test_missing_template_columns_are_a_400_naming_them(server):
    response = predict(server, "prompt,id\nhi,1\n")
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "'question'" in message and "'prompt'" in message and "'id'" in message
