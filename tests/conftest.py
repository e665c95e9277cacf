"""Fixtures: isolated code directories, the real embedded engine, and real DRUM processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nim_drum.config.settings import Settings
from nim_drum.engines.embedded import start_embedded, stop_embedded

from helpers import CANARIES, REPO, engine_root, engine_state_dirs, make_code_dir, start_drum_server


def pytest_configure(config):
    """Under pytest-xdist, each worker and the engines it starts keep to their own share of the CPUs.

    Two llama-servers whose threads share every core stall each other; the embedded engine sizes
    --threads from this affinity (engines/embedded.py, usable_cpus).
    """
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[int(worker.removeprefix("gw"))::count] or cpus)


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


@pytest.fixture(autouse=True)
def environment_kept():
    """Each test leaves os.environ as it found it, whatever order pytest-xdist runs the files in.

    place_artifacts sets NIM_PEFT_SOURCE for DRUM's NIM process (hooks.py); monkeypatch.delenv of an
    unset variable does not undo that, and the next file's engine would look for adapters there.
    """
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


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
