"""What the tests share: code directories, runtime parameters, canary credentials, DRUM and engine probes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import requests
import yaml

from nim_drum import hooks
from nim_drum.config.drum_run import DrumRun
from nim_drum.config.settings import Settings
from nim_drum.devtools.local_drum import DrumServer, free_port
from nim_drum.engines.external import connect_external
from nim_drum.serving.scoring import score_frame

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TARGET = "completion"
# Every DRUM process and settings object in the suite carries these credentials; at the end of the
# session no log, output or error file may contain them (see `no_secret_leaks`).
# Every credential parameter of model-metadata.yaml has one (test_settings checks that).
CANARIES = {
    "NGC_API_KEY": "nvapi-canary-ngc-5f1e2d",
    "engine_api_key": "sk-canary-engine-9c4b7a",
    "HuggingFaceToken": "hf_canary_hub_3d8e1f",
    # An api_token credential: sent as a Bearer token to http(s) artifact stores, which ignore it here.
    "model_artifact_credential": "canary-artifact-7a2c5b",
}



# The extra columns our score returns beside the prediction, in order (DRUM: extraModelOutput).
EXTRA_COLUMNS = ["finish_reason", "prompt_tokens", "completion_tokens", "error", "latency_ms", "retries"]

# How `drum score` runs the hooks, for tests that call score_frame in process.
LOCAL_RUN = DrumRun.detect(argv=["drum", "score"], environ={"TARGET_NAME": TARGET})

__all__ = ["DrumServer", "free_port"]


def make_code_dir(path: Path) -> Path:
    """A code directory of its own (so its own engine): custom.py, the metadata, the package."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("custom.py", "model-metadata.yaml"):
        shutil.copy(REPO / name, path / name)
    (path / "nim_drum").symlink_to(REPO / "nim_drum")
    return path


# The LoRA adapter trained at test set-up (tests/make_adapter.py, `make test`): it starts every answer with STYLE.
ADAPTER = "pirate"
STYLE = "Ahoy"


def trained_loras() -> Path:
    """The folder of adapter folders (as NIM_PEFT_SOURCE is) that `make test` trains once per machine.

    The Makefile keeps it in the user's cache under the key of what makes it: the same key here.
    """
    made_by = b"".join((REPO / name).read_bytes()
                       for name in ("tests/make_adapter.py", "requirements-vllm.txt", "requirements-engine.txt"))
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    default = cache / "nim-drum" / f"test-loras-{hashlib.sha256(made_by).hexdigest()[:12]}"
    path = Path(os.environ.get("TEST_LORAS", default))
    if not (path / ADAPTER / "adapter.gguf").is_file():
        import pytest

        pytest.fail(f"no trained adapter at {path / ADAPTER}: run `make test`, which trains it once")
    return path


def make_lora_code_dir(path: Path) -> Path:
    """A code directory whose loras/ (the default NIM_PEFT_SOURCE) holds the trained adapter."""
    make_code_dir(path)
    (path / "loras").mkdir()
    (path / "loras" / ADAPTER).symlink_to(trained_loras() / ADAPTER)
    return path


def runtime_env(params: dict | None = None, **extra: str) -> dict[str, str]:
    """The environment DRUM sets for runtime parameters: MLOPS_RUNTIME_PARAM_<name> = JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_RUNTIME_PARAM_")}
    canaries = {name: {"credentialType": "api_token", "apiToken": token} for name, token in CANARIES.items()}
    for name, value in {**canaries, **(params or {})}.items():
        kind = "credential" if isinstance(value, dict) else "numeric" if isinstance(value, (int, float)) else "string"
        env[f"MLOPS_RUNTIME_PARAM_{name}"] = json.dumps({"type": kind, "payload": value})
    env.update(TARGET_NAME=TARGET, PYTHONUNBUFFERED="1", **extra)
    return env


def wait_until(condition, timeout: float = 120, interval: float = 0.1) -> bool:
    """True once condition() is; False if it is still not after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def engine_state_dirs() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"nim-drum-{os.getuid()}-*"))


def engine_root(handle) -> str:
    return handle.base_url.removesuffix("/v1")


def busy_slots(engine_url: str) -> int:
    """How many of llama-server's slots are processing a request right now (its /slots report)."""
    return sum(1 for slot in requests.get(f"{engine_url}/slots", timeout=5).json() if slot["is_processing"])


class BusySlotMonitor:
    """Polls the engine's /slots during a test and keeps the highest number busy at once."""

    def __init__(self, engine_url: str):
        import threading

        self.engine_url, self.peak, self._stop = engine_url, 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, busy_slots(self.engine_url))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def write_values(code_dir: Path, values: dict) -> Path:
    """A runtime parameters file, as DataRobot would apply one (metadata defaults included).

    DRUM sets every declared parameter from it, so the canary credentials go in it too.
    """
    canaries = {name: {"credentialType": "api_token", "apiToken": token} for name, token in CANARIES.items()}
    path = code_dir.parent / "values.yaml"
    path.write_text(yaml.safe_dump({**canaries, **values}))
    return path


def start_drum_server(code_dir: Path, log_path: Path, values: dict | None = None, args=(), env=None) -> DrumServer:
    values_file = write_values(code_dir, values or {"engine": "embedded"})
    server = DrumServer(code_dir, log_path, ["--runtime-params-file", str(values_file), *args], env or runtime_env())
    try:
        return server.wait_ready()
    except RuntimeError:
        server.stop()
        raise


def external_params(proxy, **params) -> dict:
    """Runtime parameters that score through `proxy` (engine=external) with short answers."""
    return {"engine": "external", "base_url": f"{proxy.url}/v1", "max_tokens": 8, "request_timeout": 15, **params}


def load_settings(params: dict | None = None) -> Settings:
    """The repository's Settings under the runtime parameters DRUM would set for params."""
    return Settings.load(REPO, environ=runtime_env(params))


def score_with(handle, settings: Settings, data) -> pd.DataFrame:
    """score_frame in process, as `drum score` runs it: data is a DataFrame, or the prompts of a promptText column."""
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame({"promptText": list(data)})
    return score_frame(frame, hooks.target_for(handle, settings, None), settings, LOCAL_RUN)


def score_through(proxy, data, **params) -> pd.DataFrame:
    """Score data through the fault proxy (engine=external, short answers), with these runtime parameters."""
    settings = load_settings(external_params(proxy, **params))
    return score_with(connect_external(settings), settings, data)


NIM_FRONT = REPO / "tests" / "image" / "standin" / "common" / "opt" / "standin" / "nim_front.py"


class NimFront:
    """NIM's /v1/health/ready and /v1/health/live in front of a running engine (the stand-ins'
    nim_front.py, on the host): what DRUM's sidecar mode probes, with no DR_NIM_HEALTH_ROUTE."""

    def __init__(self, engine_port: int):
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, str(NIM_FRONT), "--port", str(self.port),
                                         "--upstream", str(engine_port)], stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{self.port}/v1/health/ready"
        if not wait_until(lambda: _answers(url), timeout=30):
            self.process.kill()
            raise AssertionError(f"nim_front.py did not answer on {url}")

    def __enter__(self) -> NimFront:
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
