"""What custom.py's DRUM hooks do, whichever way DRUM runs them (docs/drum.md, "How DRUM runs the hooks").

The one composition root: it reads the configuration and how DRUM runs us, once, and wires
artifacts, engines and serving together.

- DRUM's Python predictor (local, CI): load_model returns an EngineHandle, which DRUM passes back
  to score and chat as `model`.
- DRUM's NIM predictor (image, sidecar): DRUM runs NIM itself, `model` is the served model's name
  and score gets DRUM's `openai_client`; load_model, when called, only prepares artifacts.
"""

from __future__ import annotations

import functools
import logging
import os

import openai
import pandas as pd
from datarobot_drum.drum.exceptions import CustomHTTPError

from nim_drum.artifacts.routes import prepare_artifacts
from nim_drum.config.drum_run import DrumRun
from nim_drum.config.settings import Settings
from nim_drum.engines.factory import open_engine
from nim_drum.engines.handle import EngineHandle
from nim_drum.errors import ConfigError, RequestError
from nim_drum.serving.chat import chat as send_chat
from nim_drum.serving.csv_input import read_csv
from nim_drum.serving.engine_limits import limiter_for
from nim_drum.serving.scoring import EngineTarget, score_frame

log = logging.getLogger(__name__)


def drum_http_errors(hook):
    """Our RequestErrors as DRUM's CustomHTTPError: DRUM answers those with their status and message,
    anything else with a 500 (docs/drum.md, "Errors a hook raises")."""

    @functools.wraps(hook)
    def mapped(*args, **kwargs):
        try:
            return hook(*args, **kwargs)
        except RequestError as err:
            raise CustomHTTPError(str(err), err.status_code) from err

    return mapped


@functools.cache
def settings_for(code_dir: str) -> Settings:
    return Settings.load(code_dir)


@functools.cache
def drum_run() -> DrumRun:
    return DrumRun.detect()


def load_model(code_dir: str) -> EngineHandle | str:
    settings, run = settings_for(str(code_dir)), drum_run()
    place_artifacts(settings, code_dir, run)
    if run.gpu_predictor:
        log.info("DRUM's GPU predictor (NIM or vLLM) starts and serves the model; no engine is started here.")
        return settings.served_model_name
    return open_engine(settings, code_dir, run)


def place_artifacts(settings: Settings, code_dir: str | os.PathLike, run: DrumRun | None = None) -> None:
    """Fetch the artifacts the runtime parameters name into NIM_CACHE_PATH, model-repo and NIM_PEFT_SOURCE."""
    run = run or DrumRun.detect()
    peft_source = run.peft_source(code_dir)
    if settings.lora_artifact_uri:
        # DRUM's NIM predictor launches NIM with a copy of os.environ taken after load_model (docs/drum.md).
        os.environ.setdefault("NIM_PEFT_SOURCE", str(peft_source))
    prepare_artifacts(settings, code_dir, run.nim_cache_path, peft_source)


@drum_http_errors
def read_input_data(data: bytes) -> pd.DataFrame:
    return read_csv(data)


@drum_http_errors
def score(data: pd.DataFrame, model: EngineHandle | str, code_dir: str, **kwargs) -> pd.DataFrame:
    settings = settings_for(str(code_dir))
    return score_frame(data, target_for(model, settings, kwargs.get("openai_client")), settings, drum_run())


def target_for(model: EngineHandle | str, settings: Settings, drum_client: openai.OpenAI | None) -> EngineTarget:
    """Our engine handle's client, or under DRUM's GPU predictors the client DRUM passes, with the engine's limiter."""
    if isinstance(model, EngineHandle):
        limiter = limiter_for(model.base_url, model.model, settings, model.slots)
        return EngineTarget(client_for(model, settings), model.model, limiter)
    if drum_client is None:
        raise ConfigError(
            "score was given no engine: run it through DRUM, which calls load_model first, or "
            "under `drum server --gpu-predictor nim`, which passes openai_client."
        )
    client = drum_client.with_options(timeout=settings.request_timeout, max_retries=settings.max_retries)
    return EngineTarget(client, model, limiter_for(str(drum_client.base_url), model, settings))


@drum_http_errors
def chat(params: dict, model: EngineHandle, code_dir: str):
    target = target_for(model, settings_for(str(code_dir)), None)
    return send_chat(params, target.client, target.model, target.limiter)


@drum_http_errors
def supported_models(model: EngineHandle, code_dir: str) -> list:
    return list(client_for(model, settings_for(str(code_dir))).models.list())


@functools.cache
def client_for(handle: EngineHandle, settings: Settings) -> openai.OpenAI:
    """One client per engine, so every request shares its connection pool."""
    return handle.client(settings)
