"""Run DRUM locally the way a user does: `drum score` on a CSV, `drum server` on a free port.

Used by `make score`, the benchmark and the tests; not by the deployed model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from nim_drum.config.layout import DEFAULT_TARGET_NAME
from nim_drum.engines.launcher import free_port
from nim_drum.processes import stop_process

DRUM = Path(sys.executable).with_name("drum")
TEXT_GENERATION = ["--target-type", "textgeneration"]


def drum_env(env: dict | None = None) -> dict:
    env = dict(os.environ if env is None else env)
    env.setdefault("TARGET_NAME", DEFAULT_TARGET_NAME)
    return env


def run_drum_score(
    code_dir: Path, input_csv: Path, output_csv: Path, env: dict | None = None, log=None, args=()
) -> float:
    """Score input_csv into output_csv with `drum score`; return the seconds it took."""
    started = time.monotonic()
    command = drum_score_command(code_dir, input_csv, output_csv, args)
    subprocess.run(command, env=drum_env(env), check=True, stdout=log, stderr=subprocess.STDOUT if log else None)
    return time.monotonic() - started


def drum_score_command(code_dir: Path, input_csv: Path, output_csv: Path, args=()) -> list[str]:
    output_csv.parent.mkdir(parents=True, exist_ok=True)
    return [str(DRUM), "score", "--code-dir", str(code_dir), *TEXT_GENERATION,
            "--input", str(input_csv), "--output", str(output_csv), *args]


class DrumServer:
    """`drum server` on a free loopback port, logging to a file, stopped with SIGTERM."""

    def __init__(self, code_dir: Path, log_path: Path, args=(), env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [str(DRUM), "server", "--code-dir", str(code_dir), *TEXT_GENERATION,
                   "--address", f"127.0.0.1:{self.port}", *args]
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, env=drum_env(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 120) -> DrumServer:
        if ping_answers(self.url, lambda: self.process.poll() is None, timeout):
            return self
        if self.process.poll() is not None:
            raise RuntimeError(f"drum server exited early:\n{self.log()}")
        raise RuntimeError(f"drum server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def memory_mb(self) -> float:
        """Resident memory of DRUM's processes (gunicorn master and workers), in MB."""
        rss = subprocess.run(["ps", "-o", "rss=", "-g", str(self.process.pid)], capture_output=True, text=True)
        return sum(int(kb) for kb in rss.stdout.split()) / 1024

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            stop_process(self.process.pid, timeout)
            self.process.wait()


def ping_answers(url: str, alive: Callable[[], bool], timeout: float, ping_timeout: float = 2,
                 interval: float = 0.3) -> bool:
    """True once DRUM's /ping/ at url answers 200; False if alive() turns false or timeout passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if requests.get(f"{url}/ping/", timeout=ping_timeout).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(interval)
    return False


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(
        prog="python -m nim_drum.devtools.local_drum", description=__doc__.split("\n\n")[0],
        epilog="A library, not a command: it reads and writes nothing when run. To score a CSV locally run "
               "python -m nim_drum.devtools.batch INPUT.csv OUTPUT.csv (make score).",
    ).parse_args()
