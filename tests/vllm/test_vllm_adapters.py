"""LoRA adapters on vLLM: the trained adapter served from the code directory's loras/ with --enable-lora and
--lora-modules, selected per row by `model`, mixed with base and conversation rows in one concurrent batch."""

import json
import threading
import time

import pandas as pd
import pytest
from test_adapters import CAPITAL, SUM

from nim_drum.engines.launcher import state_dir_for

from helpers import ADAPTER, STYLE, TARGET, engine_root, load_settings, score_with
from vllm_support import VLLM_PARAMS, requests_running, vllm_dir, vllm_engine  # noqa: F401 - fixtures

pytestmark = pytest.mark.vllm


def test_vllm_is_started_with_the_adapter_folder(vllm_engine, vllm_dir):
    log = (state_dir_for(vllm_dir) / "vllm.log").read_text(errors="replace")
    assert f"LoRAModulePath(name='{ADAPTER}'" in log and f"Loaded new LoRA adapter: name '{ADAPTER}'" in log


def test_one_batch_mixes_adapter_base_and_conversation_rows_on_vllm(vllm_engine):
    history = [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "2"},
               {"role": "user", "content": SUM}]
    data = pd.DataFrame({
        "promptText": [CAPITAL, CAPITAL, "", "", CAPITAL, SUM, "", SUM],
        "lora": ["", ADAPTER, ADAPTER, "", "parrot", ADAPTER, "", ""],
        "chat": ["", "", json.dumps(history), json.dumps(history), "", "", "[1]", ""],
    })
    settings = load_settings({**VLLM_PARAMS, "max_tokens": 24, "adapter_column_name": "lora",
                              "messages_column_name": "chat", "max_concurrency": 8})
    peak, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], requests_running(engine_root(vllm_engine)))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = score_with(vllm_engine, settings, data)
    finally:
        done.set()
        watcher.join()
    answers, errors = result[TARGET].tolist(), result["error"].tolist()
    assert len(result) == len(data)
    assert [STYLE in answer for answer in answers] == [False, True, True, False, False, True, False, False], answers
    assert [bool(error) for error in errors] == [False, False, False, False, True, False, True, False], errors
    assert "'parrot'" in errors[4] and f"datarobot-deployed-llm, {ADAPTER}" in errors[4]
    assert "message 0 as a JSON number" in errors[6]
    assert "Paris" in answers[0] and "Paris" in answers[1]
    assert result["adapter"].tolist() == ["", ADAPTER, ADAPTER, "", "parrot", ADAPTER, "", ""]
    assert peak[0] >= 2, "vLLM never ran two of the batch's requests at once"
