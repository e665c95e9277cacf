"""The real DRUM: `drum score`, `drum server` (CSV, chat, models) and the NIM predictor's sidecar path."""

import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pandas as pd
import pytest
import requests

from nim_drum.devtools.local_drum import run_drum_score

from helpers import (
    EXTRA_COLUMNS,
    REPO,
    BusySlotMonitor,
    NimFront,
    engine_root,
    free_port,
    make_code_dir,
    runtime_env,
    start_drum_server,
)

PROMPTS = REPO / "examples" / "prompts.csv"
FRANCE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


def predict_csv(server, csv_text):
    return requests.post(
        f"{server.url}/predictions", data=csv_text.encode(), headers={"Content-Type": "text/csv"}, timeout=300
    )


def test_drum_score_end_to_end_on_the_examples(code_dir, tmp_path):
    output = tmp_path / "predictions.csv"
    with open(tmp_path / "drum-score.log", "wb") as log:  # kept for the secret-leak scan
        run_drum_score(code_dir, PROMPTS, output, env=runtime_env(), log=log)
    inputs = pd.read_csv(PROMPTS)
    predictions = pd.read_csv(output, keep_default_na=False)
    assert len(inputs) >= 20 and len(predictions) == len(inputs)
    france = inputs.index[inputs["promptText"].str.contains("capital of France")][0]
    assert "Paris" in predictions["Predictions"].iloc[france]
    assert (predictions["Predictions"].str.strip() != "").all()
    assert (predictions["error"] == "").all() and (predictions["completion_tokens"] > 0).all()


def with_engine_url(server, engine_port: int):
    """The server, with the URL of its embedded engine, so a test can probe the engine itself."""
    server.engine_url = f"http://127.0.0.1:{engine_port}"
    return server


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """One server for the tests that only send it requests: each start-up takes about 7 s."""
    directory, port = tmp_path_factory.mktemp("drum-server"), free_port()
    server = start_drum_server(make_code_dir(directory / "code"), directory / "drum.log", {"engine_port": port})
    yield with_engine_url(server, port)
    server.stop()


def test_server_predictions_with_csv(local_server):
    response = predict_csv(local_server, "promptText\nWhat is the capital of France?\nWhat is 2 + 2?\n")
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == 2 and "Paris" in body["predictions"][0]
    columns = body["extraModelOutput"]["columns"]
    assert columns == EXTRA_COLUMNS


def test_server_chat_with_the_openai_sdk(local_server):
    client = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused")
    completion = client.chat.completions.create(
        model="datarobot-deployed-llm", messages=FRANCE,
        max_tokens=16, temperature=0,
    )
    assert "Paris" in completion.choices[0].message.content


def test_server_chat_streams(local_server):
    client = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused")
    stream = client.chat.completions.create(
        messages=FRANCE, model="",
        max_tokens=16, temperature=0, stream=True,
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) > 2 and "Paris" in "".join(pieces)


def test_server_lists_the_served_model(local_server):
    client = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused")
    assert [m.id for m in client.models.list()] == ["datarobot-deployed-llm"]


def test_server_overlaps_chat_and_predictions_at_one_engine(local_server):
    client = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused", max_retries=0)

    def chat(i):
        return client.chat.completions.create(
            messages=[{"role": "user", "content": f"Count from 1 to 40. ({i})"}], model="", max_tokens=48
        )

    with BusySlotMonitor(local_server.engine_url) as monitor, ThreadPoolExecutor(6) as pool:
        chats = [pool.submit(chat, i) for i in range(4)]
        # Distinct prompts: identical ones at temperature 0 would be sent once.
        csv = pool.submit(predict_csv, local_server, "promptText\n" + "".join(f"Count from 1 to 40. ({i})\n" for i in range(4)))
        assert csv.result().status_code == 200 and all(c.result().choices for c in chats)
    assert monitor.peak >= 4, f"at most {monitor.peak} requests reached the engine at once"


def test_client_errors_are_4xx_with_a_clear_message(local_server):
    missing = predict_csv(local_server, "question\nWhat is 2 + 2?\n")
    assert missing.status_code == 400 and "'promptText'" in missing.text and "'question'" in missing.text
    empty = requests.post(f"{local_server.url}/v1/chat/completions", json={"messages": []}, timeout=30)
    assert empty.status_code == 400 and "messages" in empty.text
    role = requests.post(f"{local_server.url}/v1/chat/completions", json={"messages": [{"role": "wizard", "content": "hi"}]}, timeout=30)
    assert role.status_code == 400 and "wizard" in role.text
    model = requests.post(
        f"{local_server.url}/v1/chat/completions", json={"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, timeout=30
    )
    assert model.status_code == 404 and "gpt-9" in model.text


def test_stopping_drum_server_stops_its_engine(code_dir, drum_server):
    port = free_port()
    server = with_engine_url(drum_server(code_dir, values={"engine_port": port}), port)
    assert requests.get(f"{server.engine_url}/health", timeout=5).status_code == 200
    server.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(f"{server.engine_url}/health", timeout=1)
        except requests.ConnectionError:
            return
        time.sleep(0.2)
    pytest.fail("the engine still answers 10 s after drum server stopped")


def test_nim_sidecar_reaches_our_score(engine, code_dir, drum_server):
    """The production path: DRUM's NIM predictor calls our score with its openai_client."""
    root = engine_root(engine)
    host, port = root.removeprefix("http://").split(":")
    # NIM's /v1/health/ready (DRUM's default route) from the stand-ins' front: llama-server has /health only.
    # DRUM's values-file loader passes every declared parameter, an empty one as None, which DRUM's
    # NIM predictor would use as host and port: a values file names them (docs/drum.md).
    with NimFront(int(port)) as front:
        values = {"engine": "embedded", "DR_NIM_SERVER_HOST": host, "DR_NIM_SERVER_PORT": str(front.port)}
        server = drum_server(code_dir, values, args=["--gpu-predictor", "nim", "--sidecar"],
                             env=runtime_env({}, GPU_COUNT="1"))
        response = predict_csv(server, "promptText\nWhat is the capital of France?\n")
        server.stop()
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Paris" in body["predictions"][0]
    assert "finish_reason" in body["extraModelOutput"]["columns"]
