"""start_server.sh run for real: stand-in GPU tools to check the mode it picks, real DRUM to check it serves."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import requests
import yaml

from helpers import REPO, BusySlotMonitor, DrumServer, NimFront, engine_root, free_port, runtime_env

SCRIPT = REPO / "start_server.sh"
PROFILE = "tensorrt_llm-h100-fp8-tp1-throughput (canary-profile)"
CANARIES = {
    "NGC_API_KEY": "canary-ngc-raw",
    "DATAROBOT_API_TOKEN": "canary-dr-token",
    "MY_DB_PASSWORD": "canary-db-password",
    "UPSTREAM_URL": "https://bob:canary-url-password@models.example.com/v1",
    "MLOPS_RUNTIME_PARAM_NGC_API_KEY": json.dumps(
        {"type": "credential", "payload": {"credentialType": "api_token", "apiToken": "canary-ngc-param"}}),
    "MLOPS_RUNTIME_PARAM_storage": json.dumps({"type": "credential", "payload": {
        "credentialType": "s3", "awsAccessKeyId": "canary-aws-id", "awsSecretAccessKey": "canary-aws-secret",
        "awsSessionToken": "canary-aws-session"}}),
    "MLOPS_RUNTIME_PARAM_db": json.dumps(
        {"type": "credential", "payload": {"credentialType": "basic", "user": "alice", "password": "canary-basic"}}),
    "MLOPS_RUNTIME_PARAM_hf_token": json.dumps({"type": "string", "payload": "canary-string-token"}),
}


def executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def machine(tmp_path):
    """A stand-in machine: DRUM's virtualenv with a `drum` that reports how it was called, and a bin
    directory where tests put `nvidia-smi` and NIM's `list-model-profiles`."""
    venv_bin, tools, nim = tmp_path / "drum-venv" / "bin", tmp_path / "tools", tmp_path / "nim"
    executable(venv_bin / "drum", 'echo "drum pid=$$ args=$* GPU_COUNT=$GPU_COUNT"\n'
               'echo "worker_class=$MLOPS_RUNTIME_PARAM_DRUM_GUNICORN_WORKER_CLASS"\n'
               'echo "worker_connections=$MLOPS_RUNTIME_PARAM_DRUM_WORKER_CONNECTIONS"\n'
               'echo "worker_client_timeout=$MLOPS_RUNTIME_PARAM_DRUM_OPENAI_CLIENT_TIMEOUT"\n'
               'echo "nim_host=${MLOPS_RUNTIME_PARAM_DR_NIM_SERVER_HOST-unset}"\n'
               'echo "nim_port=${MLOPS_RUNTIME_PARAM_DR_NIM_SERVER_PORT-unset}"\n')
    (venv_bin / "python").symlink_to(sys.executable)
    tools.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_RUNTIME_PARAM_")}
    env.update(PATH=f"{venv_bin}:{tools}:/usr/bin:/bin", VIRTUAL_ENV=str(venv_bin.parent), DROPIN_NIM_DIR=str(nim))
    env.pop("NIM_SIDECAR", None)
    return {"env": env, "tools": tools, "nim": nim, "venv_bin": venv_bin}


def with_gpus(machine, count=2):
    lines = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i})\\n" for i in range(count))
    executable(machine["tools"] / "nvidia-smi", f'[ "$1" = "-L" ] && printf "{lines}"\n')


def with_nim(machine, script="start_server.sh"):
    executable(machine["nim"] / script, "exit 0\n")
    executable(machine["tools"] / "list-model-profiles", f'echo "{PROFILE}"\necho "profiles PATH=$PATH"\n')


def run(machine, *args, **env):
    process = subprocess.Popen([str(SCRIPT), *args], env={**machine["env"], **env},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate(timeout=60)
    return process.returncode, output, process.pid


def drum_call(output):
    return next(line for line in output.splitlines() if line.startswith("drum pid="))


def test_nim_and_gpus_run_drums_nim_predictor(machine):
    with_gpus(machine, 2)
    with_nim(machine)
    code, output, pid = run(machine, "--extra", "two words")
    assert code == 0, output
    assert drum_call(output) == f"drum pid={pid} args=server --logging-level=info --gpu-predictor=nim --extra two words GPU_COUNT=2"
    assert PROFILE in output
    # NIM's tools run without DRUM's virtualenv on PATH, as DRUM runs NIM itself
    profiles_path = next(line for line in output.splitlines() if line.startswith("profiles PATH="))
    assert str(machine["venv_bin"]) not in profiles_path and str(machine["tools"]) in profiles_path


def test_legacy_nim_launch_script_counts_as_nim(machine):
    with_gpus(machine, 1)
    with_nim(machine, "start-server.sh")
    code, output, _ = run(machine)
    assert code == 0 and "--gpu-predictor=nim" in drum_call(output) and "GPU_COUNT=1" in drum_call(output)


def test_nim_without_gpus_runs_local_mode_and_says_why(machine):
    with_nim(machine)  # no nvidia-smi on PATH
    code, output, _ = run(machine)
    assert code == 0, output
    assert "--gpu-predictor" not in drum_call(output) and "GPU_COUNT=0" in drum_call(output)
    assert "Mode: local, because no GPU was found" in output


def test_gpus_without_nim_run_local_mode_and_say_why(machine):
    with_gpus(machine, 4)
    code, output, _ = run(machine)
    assert code == 0, output
    assert "--gpu-predictor" not in drum_call(output) and "GPU_COUNT=4" in drum_call(output)
    assert f"Mode: local, because NIM is not installed in {machine['nim']}" in output
    assert PROFILE not in output


def test_sidecar_on_request(machine):
    with_gpus(machine, 1)
    with_nim(machine)
    code, output, _ = run(machine, NIM_SIDECAR="1", OPENAI_HOST="nim", OPENAI_PORT="8000")
    assert code == 0, output
    assert "args=server --logging-level=info --gpu-predictor=nim --sidecar GPU_COUNT=1" in drum_call(output)
    assert "Mode: sidecar. DRUM serves the NIM at nim:8000." in output


def test_sidecar_without_its_host_stops_with_a_clear_message(machine):
    code, output, _ = run(machine, NIM_SIDECAR="1", OPENAI_PORT="8000")
    assert code != 0 and "drum pid=" not in output
    assert "NIM_SIDECAR=1 needs OPENAI_HOST" in output


def test_one_gevent_worker_by_default_as_the_metadata_declares(machine):
    code, output, _ = run(machine)
    assert code == 0, output
    exported = {k: json.loads(v) for k, v in (line.split("=", 1) for line in output.splitlines()
                                               if line.startswith("worker_"))}
    metadata = yaml.safe_load((REPO / "model-metadata.yaml").read_text())["runtimeParameterDefinitions"]
    defaults = {d["fieldName"]: d.get("defaultValue") for d in metadata}
    assert exported["worker_class"]["payload"] == defaults["DRUM_GUNICORN_WORKER_CLASS"] == "gevent"
    assert exported["worker_connections"]["payload"] == defaults["DRUM_WORKER_CONNECTIONS"]
    # DRUM's own 3600 s would outlive the request DRUM gives up on after DRUM_CLIENT_REQUEST_TIMEOUT
    assert exported["worker_client_timeout"]["payload"] == defaults["DRUM_OPENAI_CLIENT_TIMEOUT"]
    assert defaults["DRUM_OPENAI_CLIENT_TIMEOUT"] < defaults["DRUM_CLIENT_REQUEST_TIMEOUT"]


@pytest.mark.parametrize("payload", [None, ""])
def test_an_empty_nim_host_or_port_is_dropped_so_drum_falls_back_to_openai_host(machine, payload):
    """DataRobot passes a declared parameter with no value as a null payload; DRUM's NIM predictor
    would use it as the host and port. Without it, DRUM uses OPENAI_HOST and OPENAI_PORT."""
    empty = json.dumps({"type": "string", "payload": payload})
    code, output, _ = run(machine, MLOPS_RUNTIME_PARAM_DR_NIM_SERVER_HOST=empty,
                          MLOPS_RUNTIME_PARAM_DR_NIM_SERVER_PORT=empty)
    assert code == 0, output
    assert "nim_host=unset" in output and "nim_port=unset" in output


def test_a_nim_port_that_is_set_reaches_drum(machine):
    port = json.dumps({"type": "string", "payload": "8123"})
    code, output, _ = run(machine, MLOPS_RUNTIME_PARAM_DR_NIM_SERVER_PORT=port)
    assert code == 0 and f"nim_port={port}" in output and "nim_host=unset" in output


def test_a_failing_nvidia_smi_says_why_instead_of_reading_as_no_gpu(machine):
    executable(machine["tools"] / "nvidia-smi",
               'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\nexit 9\n')
    with_nim(machine)
    code, output, _ = run(machine)
    assert code == 0 and "GPU_COUNT=0" in drum_call(output)
    assert "nvidia-smi -L failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate" in output
    assert "check the NVIDIA driver and the container runtime" in output


def test_without_virtual_env_it_stops_and_says_what_is_missing(machine):
    env = {k: v for k, v in machine["env"].items() if k != "VIRTUAL_ENV"}
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "drum pid=" not in result.stdout
    assert "VIRTUAL_ENV: must name the virtualenv of DRUM" in result.stderr


def test_values_datarobot_set_are_kept(machine):
    sync = json.dumps({"type": "string", "payload": "sync"})
    code, output, _ = run(machine, MLOPS_RUNTIME_PARAM_DRUM_GUNICORN_WORKER_CLASS=sync)
    assert code == 0 and f"worker_class={sync}" in output


def test_environment_dump_redacts_every_secret(machine):
    max_tokens = json.dumps({"type": "numeric", "payload": 128})
    code, output, _ = run(machine, ENABLE_CUSTOM_MODEL_RUNTIME_ENV_DUMP="1",
                          MLOPS_RUNTIME_PARAM_max_tokens=max_tokens, **CANARIES)
    assert code == 0, output
    assert "canary" not in output
    dump = dict(line.split("=", 1) for line in output.splitlines() if "=" in line and not line.startswith(("drum", "worker")))
    # what is not secret stays readable
    assert dump["MLOPS_RUNTIME_PARAM_max_tokens"] == max_tokens and dump["GPU_COUNT"] == "0"
    assert json.loads(dump["MLOPS_RUNTIME_PARAM_NGC_API_KEY"])["payload"]["credentialType"] == "api_token"
    # a credential shows its type only: every other field is hidden, whatever its name
    assert json.loads(dump["MLOPS_RUNTIME_PARAM_db"])["payload"] == {"credentialType": "basic", "user": "<redacted>", "password": "<redacted>"}
    assert dump["UPSTREAM_URL"] == "https://bob:<redacted>@models.example.com/v1"
    assert dump["NGC_API_KEY"] == "<redacted>"


def test_no_environment_dump_unless_asked(machine):
    code, output, _ = run(machine, **CANARIES)
    assert code == 0 and "NGC_API_KEY" not in output and "canary" not in output


class ScriptServer(DrumServer):
    """start_server.sh as the image runs it: DRUM's settings from the environment, no values file."""

    def __init__(self, code_dir: Path, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**env, "CODE_DIR": str(code_dir), "ADDRESS": f"127.0.0.1:{self.port}",
               "TARGET_TYPE": "textgeneration", "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
               "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "DROPIN_NIM_DIR": str(log_path.parent / "no-nim")}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([str(SCRIPT)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)


@pytest.fixture
def script_server(tmp_path):
    servers = []

    def start(code_dir, env):
        server = ScriptServer(code_dir, env, tmp_path / f"start-server-{len(servers)}.log")
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()


def test_local_mode_serves_predictions_and_overlaps_requests(code_dir, script_server):
    engine_port = free_port()
    server = script_server(code_dir, runtime_env({"engine_port": engine_port}))
    assert "Mode: local" in server.log()
    assert requests.get(f"{server.url}/ping/", timeout=10).status_code == 200
    response = requests.post(f"{server.url}/predictions", data=b"promptText\nWhat is the capital of France?\n",
                             headers={"Content-Type": "text/csv"}, timeout=300)
    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["predictions"][0]
    # No values file and no DataRobot: the script's gevent default is what lets requests overlap.
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)

    def chat(i):
        return client.chat.completions.create(
            messages=[{"role": "user", "content": f"Count from 1 to 40. ({i})"}], model="", max_tokens=48)

    with BusySlotMonitor(f"http://127.0.0.1:{engine_port}") as monitor, ThreadPoolExecutor(4) as pool:
        assert all(reply.choices for reply in pool.map(chat, range(4)))
    assert monitor.peak >= 3, f"at most {monitor.peak} requests reached the engine at once"


def test_sidecar_mode_against_the_embedded_engine(engine, code_dir, script_server):
    """DRUM's own health route, /v1/health/ready, answered by the stand-ins' NIM front before the
    embedded engine (llama-server has only /health): no DR_NIM_HEALTH_ROUTE."""
    host, port = engine_root(engine).removeprefix("http://").split(":")
    front = NimFront(int(port))
    with front:
        server = script_server(code_dir, runtime_env({}, NIM_SIDECAR="1", OPENAI_HOST=host, OPENAI_PORT=str(front.port)))
        assert "Mode: sidecar" in server.log()
        response = requests.post(f"{server.url}/predictions", data=b"promptText\nWhat is the capital of France?\n",
                                 headers={"Content-Type": "text/csv"}, timeout=300)
        server.stop()  # before the front goes, so that DRUM's last probe does not fail the log
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Paris" in body["predictions"][0] and "finish_reason" in body["extraModelOutput"]["columns"]


NIM2_LAUNCH = REPO / "image" / "nim2_start_server.sh"


def nim2_launch(tmp_path, **env):
    """image/nim2_start_server.sh with a nim-serve that reports the variables it was given."""
    executable(tmp_path / "bin" / "nim-serve", 'echo "nim-serve $* port=$NIM_SERVER_PORT path=${NIM_MODEL_PATH-unset}'
               ' level=${NIM_LOG_LEVEL-unset}"\n')
    base = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "NIM_SERVER_PORT": "9999", "NIM_SERVED_MODEL_NAME": "m"}
    return subprocess.run([str(NIM2_LAUNCH), "--extra"], env={**base, **env}, capture_output=True, text=True, timeout=30)


def test_the_nim2_launch_script_maps_the_1x_variables(tmp_path):
    (tmp_path / "model-repo").mkdir()
    result = nim2_launch(tmp_path, NIM_MODEL_NAME=str(tmp_path / "model-repo"), NIM_LOG_LEVEL="DEFAULT")
    assert result.returncode == 0, result.stderr
    assert f"nim-serve --extra port=9999 path={tmp_path / 'model-repo'} level=unset" in result.stdout
    assert "level=DEBUG" in nim2_launch(tmp_path, NIM_LOG_LEVEL="TRACE").stdout
    assert "level=WARNING" in nim2_launch(tmp_path, NIM_LOG_LEVEL="WARNING").stdout


@pytest.mark.parametrize("passthrough", ["--port 8001", "--max-num-seqs 8 --served-model-name=x"])
def test_the_nim2_launch_script_refuses_passthrough_args_that_outrank_drums_port_and_name(tmp_path, passthrough):
    result = nim2_launch(tmp_path, NIM_PASSTHROUGH_ARGS=passthrough)
    assert result.returncode == 2 and "nim-serve" not in result.stdout.replace("[nim-drum]", "")
    assert "which outranks the NIM_SERVER_PORT and NIM_SERVED_MODEL_NAME that DRUM gives NIM" in result.stdout
    assert "set the DR_NIM_SERVER_PORT or served_model_name runtime parameter instead" in result.stdout


def test_the_nim2_launch_script_keeps_other_passthrough_args(tmp_path):
    result = nim2_launch(tmp_path, NIM_PASSTHROUGH_ARGS="--max-num-seqs 8 --portable-x")
    assert result.returncode == 0 and "nim-serve --extra port=9999" in result.stdout
