"""Fixtures: isolated code directories, the real embedded engine, and real DRUM processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TARGET = "completion"

sys.path.insert(0, str(REPO))

from nim_drum.embedded import start_embedded, stop_embedded  # noqa: E402
from nim_drum.settings import Settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    for name, value in (params or {}).items():
        kind = "credential" if isinstance(value, dict) else "numeric" if isinstance(value, (int, float)) else "string"
        env[f"MLOPS_RUNTIME_PARAM_{name}"] = json.dumps({"type": kind, "payload": value})
    env.update(TARGET_NAME=TARGET, PYTHONUNBUFFERED="1", **extra)
    return env


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


class DrumServer:
    """`drum server` as a user runs it, on a free port, stopped with SIGTERM."""

    def __init__(self, code_dir: Path, env: dict, args: list[str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            str(VENV_BIN / "drum"), "server", "--code-dir", str(code_dir),
            "--target-type", "textgeneration", "--address", f"127.0.0.1:{self.port}", *args,
        ]
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 120) -> DrumServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"drum server exited early:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/ping/", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"drum server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def write_values(code_dir: Path, values: dict) -> Path:
    """A runtime parameters file, as DataRobot would apply one (metadata defaults included)."""
    path = code_dir.parent / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def drum_server(tmp_path):
    servers = []

    def start(code_dir: Path, values: dict | None = None, args: list[str] = (), env: dict | None = None):
        values_file = write_values(code_dir, values or {"engine": "embedded"})
        server = DrumServer(
            code_dir, env or runtime_env(), ["--runtime-params-file", str(values_file), *args],
            tmp_path / f"drum-{len(servers)}.log",
        )
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()
