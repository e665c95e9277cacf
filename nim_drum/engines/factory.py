"""Choosing the engine that the `engine` runtime parameter names."""

from __future__ import annotations

import os

from nim_drum.config.drum_run import DrumRun
from nim_drum.config.settings import Settings
from nim_drum.engines.embedded import start_embedded
from nim_drum.engines.external import connect_external
from nim_drum.engines.handle import EngineHandle
from nim_drum.engines.vllm_engine import start_vllm


def open_engine(settings: Settings, code_dir: str | os.PathLike, run: DrumRun) -> EngineHandle:
    """Start or connect to the engine that `settings.engine` names."""
    if settings.engine == "external":
        return connect_external(settings)
    if settings.engine == "vllm":
        return start_vllm(settings, code_dir, run.owning_process(), run.peft_source(code_dir))
    return start_embedded(settings, code_dir, run.owning_process(), run.peft_source(code_dir))
