"""An engine's 401, 403 or 404 while scoring is an engine or configuration failure, never the row's fault."""

import pytest
import requests

from nim_drum.errors import RowsFailedError

from helpers import external_params, make_code_dir, score_through, start_drum_server

WHAT_TO_SET = {"401": "engine_api_key", "403": "engine_api_key", "404": "served_model_name"}


@pytest.mark.parametrize("status", ["401", "403", "404"])
def test_auth_and_missing_model_fail_as_the_engine_with_what_to_configure(fault_proxy, status):
    fault_proxy.inject(status, times=100, match="row refused")
    with pytest.raises(RowsFailedError) as error:
        score_through(fault_proxy, ["Say hi. (row ok)", "Say hi. (row refused)"], on_row_error="fail")
    message = str(error.value)
    assert error.value.status_code == 502, message
    assert f"row 1: HTTP {status}" in message and WHAT_TO_SET[status] in message
    assert "Fix those rows" not in message


def test_recorded_auth_failures_say_what_to_configure(fault_proxy):
    fault_proxy.inject("401", times=100, match="row refused")
    result = score_through(fault_proxy, ["Say hi. (row ok)", "Say hi. (row refused)"])
    assert result["error"].iloc[0] == ""
    assert result["error"].iloc[1].startswith("HTTP 401") and "engine_api_key" in result["error"].iloc[1]
    assert len(fault_proxy.attempts_matching("row refused")) == 1  # not retried: retrying cannot fix a key


def test_drum_server_answers_502_for_an_engine_that_refuses_the_key(fault_proxy, tmp_path):
    values = external_params(fault_proxy, on_row_error="fail")
    server = start_drum_server(make_code_dir(tmp_path / "code"), tmp_path / "drum.log", values)
    try:
        fault_proxy.inject("403", times=100)
        response = requests.post(
            f"{server.url}/predictions", data=b"promptText\nSay hi.\n", headers={"Content-Type": "text/csv"}, timeout=120
        )
    finally:
        server.stop()
    assert response.status_code == 502, response.text
    assert "engine_api_key" in response.json()["message"]
