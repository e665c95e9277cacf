"""How DRUM runs this code, read once: its subcommand, its predictor, gunicorn, the target's name.

DRUM puts its command line in sys.argv, gunicorn workers included (DRUM 1.18.1
gunicorn/gunicorn.conf.py, post_worker_init), and passes the rest through the environment
(docs/drum.md, "How DRUM runs the hooks").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nim_drum.config.layout import DEFAULT_NIM_CACHE_PATH, DEFAULT_TARGET_NAME, LORA_DIR


@dataclass(frozen=True)
class DrumRun:
    subcommand: str | None  # "score", "server", ...; None outside DRUM
    gpu_predictor: str | None  # "nim" or "vllm" under DRUM's GPU predictors, None for the Python one
    under_gunicorn: bool  # DRUM's default server: workers are children of one gunicorn master
    target_name: str
    nim_cache_path: Path
    nim_peft_source: Path | None  # None: <code_dir>/loras, which load_model exports for NIM

    @classmethod
    def detect(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> DrumRun:
        argv = sys.argv if argv is None else argv
        environ = os.environ if environ is None else environ
        peft = environ.get("NIM_PEFT_SOURCE")
        return cls(
            subcommand=next((arg for arg in argv[1:] if not arg.startswith("-")), None),
            gpu_predictor=_option(argv, "--gpu-predictor"),
            under_gunicorn="DRUM_GUNICORN_DRUM_ARGS" in environ,
            target_name=environ.get("TARGET_NAME") or DEFAULT_TARGET_NAME,
            nim_cache_path=Path(environ.get("NIM_CACHE_PATH") or DEFAULT_NIM_CACHE_PATH),
            nim_peft_source=Path(peft) if peft else None,
        )

    def has_request_timeout(self) -> bool:
        """`drum server` kills a request after DRUM_CLIENT_REQUEST_TIMEOUT; `drum score` has no such limit."""
        return self.subcommand == "server"

    def peft_source(self, code_dir: str | os.PathLike) -> Path:
        return self.nim_peft_source or Path(code_dir) / LORA_DIR

    def owning_process(self) -> int:
        """The process an engine we start must not outlive: gunicorn's master, so that its workers share it."""
        return os.getppid() if self.under_gunicorn else os.getpid()


def _option(argv: Sequence[str], name: str) -> str | None:
    for position, arg in enumerate(argv):
        if arg == name:
            return argv[position + 1] if position + 1 < len(argv) else ""
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
