"""Fixtures: isolated code directories, the real embedded engine, and real DRUM processes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

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

sys.path.insert(0, str(REPO))

from nim_drum.engines.embedded import start_embedded, stop_embedded  # noqa: E402
from nim_drum.devtools.local_drum import DrumServer, free_port  # noqa: E402,F401 - tests import free_port from here
from nim_drum.serving.settings import Settings  # noqa: E402


# The extra columns our score returns beside the prediction, in order (DRUM: extraModelOutput).
EXTRA_COLUMNS = ["finish_reason", "prompt_tokens", "completion_tokens", "error", "latency_ms", "retries"]


def make_code_dir(path: Path) -> Path:
    """A code directory of its own (so its own engine): custom.py, the metadata, the package."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("custom.py", "model-metadata.yaml"):
        shutil.copy(REPO / name, path / name)
    (path / "nim_drum").symlink_to(REPO / "nim_drum")
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


@pytest.fixture(scope="session", autouse=True)
def no_secret_leaks(tmp_path_factory):
    """After the whole suite: no canary credential in any log, output or error file it wrote.

    values.yaml files are the tests' own input, where the canaries are put on purpose.
    """
    yield
    roots = [tmp_path_factory.getbasetemp(), REPO / "output", *engine_state_dirs()]
    leaks = [
        f"{path} has {name}"
        for root in roots if root.exists()
        for path in root.rglob("*") if path.is_file() and not path.is_symlink() and path.name != "values.yaml"
        for name, token in CANARIES.items() if token.encode() in path.read_bytes()
    ]
    assert not leaks, f"secrets leaked: {leaks}"


@pytest.fixture
def code_dir(tmp_path) -> Path:
    directory = make_code_dir(tmp_path / "code")
    yield directory
    stop_embedded(directory)


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory) -> Path:
    directory = make_code_dir(tmp_path_factory.mktemp("engine") / "code")
    yield directory
    stop_embedded(directory)


@pytest.fixture(scope="session")
def engine(engine_dir):
    """The real embedded engine (llama-server with SmolLM2-135M-Instruct), shared by a session."""
    return start_embedded(Settings.load(engine_dir, environ={}), engine_dir)


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


@pytest.fixture
def drum_server(tmp_path):
    servers = []

    def start(code_dir: Path, values: dict | None = None, args=(), env: dict | None = None):
        servers.append(start_drum_server(code_dir, tmp_path / f"drum-{len(servers)}.log", values, args, env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fault_proxy(engine):
    """The fault-injecting proxy (tests/faultproxy.py) in front of the session's real engine."""
    from faultproxy import FaultProxy

    proxy = FaultProxy(engine_root(engine))
    yield proxy
    proxy.close()


def external_params(proxy, **params) -> dict:
    """Runtime parameters that score through `proxy` (engine=external) with short answers."""
    return {"engine": "external", "base_url": f"{proxy.url}/v1", "max_tokens": 8, "request_timeout": 15, **params}


def load_settings(params: dict | None = None) -> Settings:
    """The repository's Settings under the runtime parameters DRUM would set for params."""
    return Settings.load(REPO, environ=runtime_env(params))
