"""Local engine processes: one per code directory and engine kind, shared by DRUM workers, supervised.

DRUM may start several workers, each calling load_model. The first one starts the engine; the
others find it through a state file, serialised by a file lock, and share it. The engine runs under
nim_drum.engines.guard, which restarts it when it crashes and stops it once the owning DRUM process is gone,
so it is never orphaned. The embedded llama-server and vLLM both start here; each module only says
which command to run.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from filelock import FileLock

from nim_drum.config.drum_run import DrumRun
from nim_drum.config.settings import Settings
from nim_drum.engines.handle import EngineHandle
from nim_drum.errors import EngineError
from nim_drum.processes import process_alive, stop_process

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10
LOG_TAIL_LINES = 25
STATE_KEYS = ("pid", "base_url", "model", "log_file")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds nim_drum/, for `python -m`


@dataclass(frozen=True)
class EngineLaunch:
    """How to start one engine: its command (already holding `port`) and what to call it in messages."""

    kind: str
    program: str  # for messages, with the model it serves: "llama-server with model.gguf"
    command: list[str]
    port: int
    model: str
    start_timeout: float
    # Added to the engine's environment, never logged: it may hold tokens.
    env: dict[str, str] = field(default_factory=dict, repr=False)
    slots: int | None = None  # requests the engine runs at once, when it has a fixed number
    loras: tuple[str, ...] = ()  # EngineHandle.loras


def shared_engine(
    code_dir: str | os.PathLike, kind: str, start_timeout: float, plan: Callable[[], EngineLaunch],
    owner: int | None = None,
) -> EngineHandle:
    """Return the code directory's running engine of this kind, starting it with `plan()` if none runs.

    The engine stops once `owner` (this process by default; gunicorn's master under DRUM's server, so
    that its workers share one engine and a restarted worker finds it again) is gone.
    """
    state_dir = state_dir_for(code_dir)
    # A second worker waits here while the first one starts the engine.
    with FileLock(state_dir / "engine.lock", timeout=start_timeout + 30):
        handle = _running_engine(state_dir, kind)
        if handle:
            log.info("Engine: sharing the running %s engine at %s", kind, handle.base_url)
            return handle
        return _launch(plan(), Path(code_dir), state_dir, owner or os.getpid())


def start_local(
    kind: str, launch: Callable[[Settings, Path, Path], EngineLaunch], start_timeout: float, settings: Settings,
    code_dir: str | os.PathLike, owner: int | None = None, peft_source: Path | None = None,
) -> EngineHandle:
    """shared_engine for an engine of this kind that `launch(settings, code_dir, peft_source)` plans.

    The engine serves the adapters in peft_source (default: NIM_PEFT_SOURCE, or <code_dir>/loras).
    """
    peft = peft_source or DrumRun.detect().peft_source(code_dir)
    return shared_engine(code_dir, kind, start_timeout, lambda: launch(settings, Path(code_dir), peft), owner)


def stop_shared(code_dir: str | os.PathLike, kind: str) -> None:
    """Stop the code directory's engine of this kind, if one runs (SIGTERM, then SIGKILL)."""
    state_file = state_dir_for(code_dir) / f"{kind}.json"
    state = read_state(state_file)
    if state:
        stop_process(state["pid"], STOP_TIMEOUT_SECONDS)
    state_file.unlink(missing_ok=True)


def in_dev_checkout() -> bool:
    """True in a clone of this repository (make works); False in the image, where there is no Makefile."""
    return (PACKAGE_ROOT / "Makefile").is_file()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def state_dir_for(code_dir: str | os.PathLike) -> Path:
    # An engine is private to its container, so its state lives in the container's /tmp; artifact
    # locks, which replicas share, live beside the artifacts (nim_drum.artifacts.routes).
    key = hashlib.sha256(str(Path(code_dir).resolve()).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"nim-drum-{os.getuid()}-{key}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def read_state(state_file: Path) -> dict | None:
    """The state a running engine's starter wrote; None when there is none or it cannot be used."""
    try:
        state = json.loads(state_file.read_text())
        if all(key in state for key in STATE_KEYS):
            return state
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        pass
    log.warning("Engine: %s is not a valid engine state file; treating it as no engine yet.", state_file)
    return None


def write_state(state_file: Path, state: dict) -> None:
    # A worker that reads while another writes sees the old file or the new one, never half of one.
    temporary = state_file.with_name(f".{state_file.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, state_file)


def _running_engine(state_dir: Path, kind: str) -> EngineHandle | None:
    state_file = state_dir / f"{kind}.json"
    state = read_state(state_file)
    if state:
        handle = EngineHandle(kind, state["base_url"], state["model"], log_file=state["log_file"],
                              slots=state.get("slots"), loras=tuple(state.get("loras") or ()))
        if process_alive(state["pid"]) and healthy(handle.base_url):
            return handle
    state_file.unlink(missing_ok=True)
    return None


def _launch(launch: EngineLaunch, code_dir: Path, state_dir: Path, owner: int) -> EngineHandle:
    log_file = state_dir / f"{launch.kind}.log"
    log_file.write_text("")
    base_url = f"http://127.0.0.1:{launch.port}/v1"
    command = [sys.executable, "-m", "nim_drum.engines.guard", str(owner), str(log_file), _health_url(base_url), "--",
               *launch.command]
    log.info("Engine: starting %s on port %d; log: %s", launch.program, launch.port, log_file)
    with open(log_file, "ab") as guard_output:
        process = subprocess.Popen(
            command, start_new_session=True, stdin=subprocess.DEVNULL, stdout=guard_output,
            stderr=guard_output, cwd=PACKAGE_ROOT, env={**os.environ, **launch.env},
        )
    _wait_until_ready(process, base_url, log_file, launch)
    state = {"pid": process.pid, "base_url": base_url, "model": launch.model,
             "log_file": str(log_file), "owner": owner, "slots": launch.slots, "loras": list(launch.loras)}
    write_state(state_dir / f"{launch.kind}.json", state)
    if owner == os.getpid():
        atexit.register(stop_shared, code_dir, launch.kind)
    return EngineHandle(launch.kind, base_url, launch.model, log_file=str(log_file), slots=launch.slots,
                        loras=launch.loras)


def _wait_until_ready(process: subprocess.Popen, base_url: str, log_file: Path, launch: EngineLaunch) -> None:
    deadline = time.monotonic() + launch.start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineError(
                f"{launch.program} exited with code {process.returncode} before it was ready. "
                f"Last lines of {log_file}:\n{_tail(log_file)}"
            )
        if healthy(base_url):
            return
        time.sleep(0.2)
    stop_process(process.pid, STOP_TIMEOUT_SECONDS)
    raise EngineError(
        f"{launch.program} was not ready after {launch.start_timeout:.0f} s. "
        f"Last lines of {log_file}:\n{_tail(log_file)}"
    )


def _health_url(base_url: str) -> str:
    # llama-server and vLLM both answer /health at the root (NIM's is /v1/health/ready).
    return base_url.removesuffix("/v1") + "/health"


def healthy(base_url: str) -> bool:
    try:
        return requests.get(_health_url(base_url), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _tail(path: Path) -> str:
    with open(path, errors="replace") as lines:
        return "".join(deque(lines, LOG_TAIL_LINES))
