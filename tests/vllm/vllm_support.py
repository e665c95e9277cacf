"""What the vLLM test group shares: the converted checkpoint, code directories that serve it, the engine.

Not a conftest.py: tests/conftest.py is imported as `conftest` by the other tests, and a second
conftest module of that name would shadow it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from nim_drum.config.settings import Settings
from nim_drum.engines.vllm_engine import VENV_PYTHON, start_vllm, stop_vllm

from helpers import ADAPTER, make_code_dir, runtime_env, trained_loras

# The test engine's context: small enough that the embedded suite's over-long prompt (5,000 words)
# is rejected, as it is by llama-server's 2,048-token slots.
MAX_MODEL_LEN = 2048
VLLM_PARAMS = {"engine": "vllm", "max_model_len": MAX_MODEL_LEN}


def checkpoint() -> Path:
    """SmolLM2-135M-Instruct as safetensors, made once by `make test-vllm`."""
    path = Path(os.environ.get("VLLM_TEST_CHECKPOINT", VENV_PYTHON.parent.parent / "smollm2-135m-instruct"))
    if not (path / "config.json").is_file() or not VENV_PYTHON.exists():
        pytest.fail(f"no vLLM or no checkpoint at {path}: run `make test-vllm`, which makes both")
    return path


def make_vllm_code_dir(path: Path, folder: str = "model-repo", loras: bool = False) -> Path:
    """A code directory whose `folder` (model-repo, or DRUM's vllm/) holds the checkpoint, and whose
    loras/ (the default NIM_PEFT_SOURCE) holds the trained adapter when `loras`."""
    if not path.exists():
        make_code_dir(path)
        (path / folder).symlink_to(checkpoint())
        if loras:
            (path / "loras").mkdir()
            (path / "loras" / ADAPTER).symlink_to(trained_loras() / ADAPTER)
    return path


def vllm_settings(code_dir: Path, **params) -> Settings:
    return Settings.load(code_dir, environ=runtime_env({**VLLM_PARAMS, **params}))


@pytest.fixture(scope="session")
def vllm_dir(tmp_path_factory) -> Path:
    # One fixed directory for the whole session: every module that starts the engine there
    # shares the running one through the launcher's state file, as DRUM workers do.
    directory = make_vllm_code_dir(tmp_path_factory.getbasetemp() / "vllm-engine" / "code", loras=True)
    yield directory
    stop_vllm(directory)


@pytest.fixture(scope="session")
def vllm_engine(vllm_dir):
    """The real vLLM OpenAI server on CPU, serving the checkpoint and the trained adapter, shared by the session."""
    return start_vllm(vllm_settings(vllm_dir), vllm_dir)


def requests_running(engine_root: str) -> int:
    """Requests vLLM is generating for right now (its Prometheus gauge)."""
    for line in requests.get(f"{engine_root}/metrics", timeout=5).text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            return int(float(line.split()[-1]))
    return 0
