"""Transient faults are survived and no row is lost: a fault-injecting proxy in front of the real engine."""

import logging
import os
import signal
import subprocess
import threading

import openai
import pandas as pd
import pytest

from nim_drum import hooks
from nim_drum.config.settings import Settings
from nim_drum.engines.embedded import start_embedded
from nim_drum.engines.external import connect_external
from nim_drum.errors import ClientError, RequestError, RowsFailedError
from nim_drum.serving.chat import chat

from faultproxy import FaultProxy
from helpers import (
    TARGET,
    busy_slots,
    engine_root,
    free_port,
    load_settings,
    runtime_env,
    score_through,
    score_with,
    wait_until,
)


@pytest.fixture
def proxy(engine):
    proxy = FaultProxy(engine_root(engine))
    yield proxy
    proxy.close()


def settings_for(base_url, **params):
    # request_timeout sits below the proxy's SLOW_SECONDS and far above an 8-token answer, even on
    # a busy 2-core machine.
    params = {"engine": "external", "base_url": base_url, "max_tokens": 8, "request_timeout": 15,
              "max_concurrency": 4, **params}
    return load_settings(params)


def test_every_transient_fault_is_retried_and_no_row_is_lost(proxy, caplog):
    kinds = ["429", "500", "502", "503", "reset", "slow"]
    for kind in kinds:
        proxy.inject(kind, match=f"row {kind}")
    prompts = [f"Say hello. (row {kind})" for kind in kinds] + [f"Say hi. (row ok{i})" for i in range(4)]
    with caplog.at_level(logging.INFO, logger="nim_drum"):
        result = score_through(proxy, prompts)
    assert len(result) == len(prompts)
    assert (result["error"] == "").all(), result["error"].tolist()
    assert (result[TARGET].str.strip() != "").all()
    for kind in kinds:
        attempts = proxy.attempts_matching(f"row {kind}")
        assert [a.fault for a in attempts] == [kind, None], kind
    assert "rows=10 succeeded=10 retried=6 failed=0" in caplog.text


def test_retry_after_is_honoured(proxy):
    proxy.retry_after_seconds = 2
    proxy.inject("429", match="row limited")
    score_through(proxy, ["Say hello. (row limited)"])
    first, second = proxy.attempts_matching("row limited")
    assert second.at - first.at >= 2


def test_a_row_that_keeps_failing_is_recorded_after_max_retries(proxy):
    proxy.inject("503", times=100, match="row doomed")
    result = score_through(proxy, ["Say hi. (row a)", "Say hi. (row doomed)", "Say hi. (row b)"], max_retries=2)
    assert result["error"].tolist()[0] == result["error"].tolist()[2] == ""
    assert result["error"].iloc[1].startswith("HTTP 503")
    assert result[TARGET].iloc[1] == "" and result[TARGET].iloc[0] != ""
    assert len(proxy.attempts_matching("row doomed")) == 3


def test_client_errors_are_not_retried(proxy):
    result = score_through(proxy, ["hello " * 5000 + "(row long)"])
    assert result["error"].iloc[0].startswith("HTTP 400")
    assert len(proxy.attempts_matching("(row long)")) == 1


def test_on_row_error_fail_lists_the_failed_rows(proxy):
    proxy.inject("503", times=100, match="row doomed")
    with pytest.raises(RowsFailedError) as error:
        score_through(proxy, ["Say hi.", "Say hi. (row doomed)", ""], max_retries=1, on_row_error="fail")
    message = str(error.value)
    assert "2 of 3 rows failed" in message and "row 1: HTTP 503" in message and "row 2: empty prompt" in message
    assert error.value.status_code == 502


def test_on_row_error_fail_for_bad_rows_only_is_a_422(engine):
    settings = load_settings({"on_row_error": "fail"})
    frame = pd.DataFrame({"promptText": ["Say hi.", "  "]})
    with pytest.raises(RowsFailedError) as error:
        score_with(engine, settings, frame)
    assert error.value.status_code == 422 and "row 1: empty prompt" in str(error.value)


def test_a_cut_stream_reaches_the_client_as_an_error(proxy):
    settings = settings_for(f"{proxy.url}/v1", max_tokens=64)
    handle = connect_external(settings)
    proxy.inject("truncate")
    request = {"messages": [{"role": "user", "content": "Count from 1 to 30."}], "stream": True, "max_tokens": 64}
    items = list(chat(request, hooks.client_for(handle, settings), handle.model))
    assert "ended before the completion finished" in items[-1].to_json()
    complete = list(chat(request, hooks.client_for(handle, settings), handle.model))
    assert all(hasattr(item, "choices") for item in complete)


def test_engine_http_errors_in_chat_keep_their_status(engine):
    settings = load_settings()
    request = {"messages": [{"role": "user", "content": "hello " * 5000}]}
    with pytest.raises(ClientError) as error:
        chat(request, hooks.client_for(engine, settings), engine.model)
    assert error.value.status_code == 400 and "engine rejected" in str(error.value)


def test_an_engine_5xx_in_chat_is_retried_and_a_lasting_one_reaches_drum_as_an_error(proxy):
    # README, "Chat": retried like a scoring request; once the retries are used up the error is not a
    # CustomHTTPError, so DRUM answers it with a 500 (docs/drum.md).
    settings = settings_for(f"{proxy.url}/v1", max_retries=2)
    handle = connect_external(settings)
    # A chat request keeps its own max_tokens (the runtime parameter is for batch rows); without one,
    # a sampled answer once ran past request_timeout in CI.
    request = {"messages": [{"role": "user", "content": "Say hi. (chat 5xx once)"}], "max_tokens": 8}
    proxy.inject("502", times=1, match="chat 5xx once")
    assert chat(request, hooks.client_for(handle, settings), handle.model).choices[0].message.content
    assert [a.fault for a in proxy.attempts_matching("chat 5xx once")][:2] == ["502", None]
    request = {"messages": [{"role": "user", "content": "Say hi. (chat 5xx always)"}], "max_tokens": 8}
    proxy.inject("503", times=10, match="chat 5xx always")
    with pytest.raises(openai.InternalServerError):
        chat(request, hooks.client_for(handle, settings), handle.model)
    assert [a.fault for a in proxy.attempts_matching("chat 5xx always")] == ["503"] * 3  # 1 + max_retries


@pytest.mark.parametrize("status, what_to_check", [
    ("401", "engine_api_key"), ("403", "engine_api_key"), ("404", "served_model_name"),
])
def test_engine_auth_and_model_errors_in_chat_are_a_502_that_names_the_configuration(proxy, status, what_to_check):
    settings = settings_for(f"{proxy.url}/v1")
    handle = connect_external(settings)
    proxy.inject(status)
    request = {"messages": [{"role": "user", "content": "Say hi."}]}
    with pytest.raises(RequestError) as error:
        chat(request, hooks.client_for(handle, settings), handle.model)
    assert error.value.status_code == 502, str(error.value)
    assert what_to_check in str(error.value) and f"HTTP {status}" in str(error.value)


def llama_server_pid(port):
    # The guard's command line holds llama-server's too: match the one that starts with the binary.
    found = subprocess.run(["pgrep", "-f", f"^[^ ]*/llama-server .*--port {port} "], capture_output=True, text=True)
    return int(found.stdout.split()[0])


def test_an_engine_that_dies_mid_batch_is_restarted_and_its_rows_retried(code_dir, caplog):
    port = free_port()
    # Rows survive a restart that fits in their retries' backoff (README, "Failure behaviour"), with
    # the default max_retries: on a busy 2-core machine llama-server answers 503 "Loading model" for
    # seconds, which 3 retries (about 3 s) did not always outlast; 5 gives it about 15 s.
    params = {"engine_port": port, "max_tokens": 48, "max_concurrency": 4}
    settings = Settings.load(code_dir, environ=runtime_env(params))
    assert settings.max_retries >= 5, "the default max_retries must outlast the embedded engine's restart"
    handle = start_embedded(settings, code_dir)
    # The guard restarts only an engine it has seen healthy (not one failing to start).
    assert wait_until(lambda: "engine is ready" in open(handle.log_file).read())
    pid = llama_server_pid(port)
    frame = pd.DataFrame({"promptText": [f"Count from 1 to 20. ({i})" for i in range(8)]})

    def kill_engine_mid_batch():
        # Requests in flight, as llama-server's /slots reports them.
        if wait_until(lambda: busy_slots(engine_root(handle)) >= 2, interval=0.05):
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_engine_mid_batch)
    killer.start()
    with caplog.at_level(logging.INFO, logger="nim_drum"):
        result = score_with(handle, settings, frame)
    killer.join()
    assert len(result) == 8 and (result["error"] == "").all(), result["error"].tolist()
    assert "retried=0" not in caplog.text
    log = open(handle.log_file).read()
    assert "restart 1 of 5" in log
    assert llama_server_pid(port) != pid
