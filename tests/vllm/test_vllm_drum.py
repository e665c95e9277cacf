"""The real DRUM on vLLM: `drum score` and `drum server` with engine=vllm, and DRUM's own vLLM predictor."""

import json
import os
import signal
import subprocess
import time

import openai
import pandas as pd
import pytest
import requests
from test_drum import FRANCE, PROMPTS, predict_csv

from nim_drum.devtools.local_drum import run_drum_score
from nim_drum.engines.launcher import state_dir_for
from nim_drum.engines.vllm_engine import VENV_PYTHON

from helpers import ADAPTER, EXTRA_COLUMNS, free_port, runtime_env
from vllm_support import MAX_MODEL_LEN, VLLM_PARAMS, make_vllm_code_dir, vllm_dir, vllm_engine  # noqa: F401

pytestmark = pytest.mark.vllm


def answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_drum_score_end_to_end_starts_and_stops_vllm(tmp_path):
    code_dir = make_vllm_code_dir(tmp_path / "code")
    port = free_port()
    output = tmp_path / "predictions.csv"
    with open(tmp_path / "drum-score.log", "wb") as log:  # kept for the secret-leak scan
        run_drum_score(code_dir, PROMPTS, output, env=runtime_env({**VLLM_PARAMS, "engine_port": port}), log=log)
    inputs = pd.read_csv(PROMPTS)
    predictions = pd.read_csv(output, keep_default_na=False)
    assert len(predictions) == len(inputs) >= 20
    france = inputs.index[inputs["promptText"].str.contains("capital of France")][0]
    assert "Paris" in predictions["Predictions"].iloc[france]
    assert (predictions["Predictions"].str.strip() != "").all()
    assert (predictions["error"] == "").all() and (predictions["completion_tokens"] > 0).all()
    assert f"model='{code_dir / 'model-repo'}'" in (state_dir_for(code_dir) / "vllm.log").read_text()
    deadline = time.monotonic() + 15
    while answers(f"http://127.0.0.1:{port}/health") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not answers(f"http://127.0.0.1:{port}/health"), "vLLM outlived drum score"


@pytest.fixture
def vllm_server(vllm_engine, vllm_dir, drum_server):
    """drum server with engine=vllm on the session's code directory: it shares the running vLLM."""
    return drum_server(vllm_dir, values=VLLM_PARAMS)


def test_server_predictions_with_csv(vllm_server):
    response = predict_csv(vllm_server, "promptText\nWhat is the capital of France?\nWhat is 2 + 2?\n")
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == 2 and "Paris" in body["predictions"][0]
    assert body["extraModelOutput"]["columns"] == EXTRA_COLUMNS


def test_server_chat_and_streaming_with_the_openai_sdk(vllm_server):
    client = openai.OpenAI(base_url=f"{vllm_server.url}/v1", api_key="unused")
    assert [m.id for m in client.models.list()] == ["datarobot-deployed-llm", ADAPTER]
    reply = client.chat.completions.create(model="datarobot-deployed-llm", messages=FRANCE, max_tokens=16, temperature=0)
    assert "Paris" in reply.choices[0].message.content
    stream = client.chat.completions.create(messages=FRANCE, model="", max_tokens=16, temperature=0, stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) > 2 and "".join(pieces) == reply.choices[0].message.content


def test_server_client_errors_are_4xx(vllm_server):
    role = requests.post(f"{vllm_server.url}/v1/chat/completions",
                         json={"messages": [{"role": "wizard", "content": "hi"}]}, timeout=30)
    assert role.status_code == 400 and "wizard" in role.text
    too_long = requests.post(f"{vllm_server.url}/v1/chat/completions",
                             json={"messages": [{"role": "user", "content": "hello " * 5000}]}, timeout=60)
    assert too_long.status_code == 400


def test_the_same_code_dir_runs_under_drums_own_vllm_predictor(tmp_path, drum_server):
    """`drum server --gpu-predictor=vllm`: DRUM starts vLLM from vllm/ and engine_config.json after our load_model.

    DRUM 1.18.1's vLLM predictor never calls a custom score hook (only its NIM predictor does):
    /predictions there is DRUM's built-in, one request per row, so only its shape is checked.
    """
    code_dir = make_vllm_code_dir(tmp_path / "code", folder="vllm")
    # DRUM's predictor only adds these args to its command; on CPU vLLM needs --enforce-eager.
    (code_dir / "engine_config.json").write_text(json.dumps({"args": ["--enforce-eager"]}))
    port = free_port()
    # DRUM runs `python3 -m vllm...` from PATH, and vLLM on CPU needs a KV-cache size or
    # gpu_memory_utilization to start beside other processes.
    env = runtime_env({"max_model_len": MAX_MODEL_LEN}, OPENAI_PORT=str(port), VLLM_CPU_KVCACHE_SPACE="2",
                      VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", PATH=f"{VENV_PYTHON.parent}:{os.environ['PATH']}")
    server = drum_server(code_dir, values={"max_model_len": MAX_MODEL_LEN},
                         args=["--gpu-predictor", "vllm", "--logging-level", "info"], env=env)
    try:
        deadline = time.monotonic() + 300
        while not answers(f"http://127.0.0.1:{port}/health"):
            assert time.monotonic() < deadline and server.process.poll() is None, server.log()
            time.sleep(1)
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        reply = client.chat.completions.create(model="datarobot-deployed-llm", messages=FRANCE, max_tokens=16, temperature=0)
        assert "Paris" in reply.choices[0].message.content
        response = predict_csv(server, "promptText\nWhat is the capital of France?\nWhat is 2 + 2?\n")
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 2
        log = server.log_path.read_text(errors="replace")
        assert "no engine is started here" in log  # our load_model ran, under DRUM's predictor
        assert f"Default model path ({code_dir / 'vllm'}) appears to be ready" in log
    finally:
        server.stop()
        _stop_leftover_vllm(port)


def _stop_leftover_vllm(port):
    # DRUM's predictor takes its own shutdown for a crash and starts vLLM again, which then
    # outlives DRUM: stop the vLLM this test's DRUM started on its port.
    found = subprocess.run(["pgrep", "-f", f"vllm.entrypoints.openai.api_server .*--port {port} "],
                           capture_output=True, text=True)
    for pid in found.stdout.split():
        os.kill(int(pid), signal.SIGTERM)
