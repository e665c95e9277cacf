"""The runtime parameters DRUM's NIM predictor reads itself (docs/drum.md, "DRUM's NIM predictor"):
declared, with defaults that fit the rest, and clear errors for values DRUM would choke on."""

import pytest
import yaml

from nim_drum.config.settings import Settings
from nim_drum.errors import ConfigError

from helpers import REPO, load_settings

# DRUM 1.18.1's gpu_predictors/nim_predictor.py and base.py read these with get_optional_parameter.
DRUM_NIM_KNOBS = ["DR_NIM_HEALTH_ROUTE", "DR_NIM_SERVER_HOST", "DR_NIM_SERVER_PORT", "DRUM_OPENAI_CLIENT_TIMEOUT",
                  "max_watchdog_restarts"]


def definitions():
    metadata = yaml.safe_load((REPO / "model-metadata.yaml").read_text())
    return {d["fieldName"]: d for d in metadata["runtimeParameterDefinitions"]}


def test_every_knob_is_declared_with_a_description():
    declared = definitions()
    for name in DRUM_NIM_KNOBS:
        assert name in declared and declared[name]["description"].strip(), name
    # a string, as DRUM formats it into NIM_SERVER_PORT and its URL (a numeric 8000.0 would break both)
    assert declared["DR_NIM_SERVER_PORT"]["type"] == "string"


def test_defaults_are_nims_route_and_a_client_timeout_under_drums_request_timeout():
    settings = Settings.load(REPO, environ={})
    assert settings.dr_nim_health_route == "/v1/health/ready"
    assert settings.dr_nim_server_host is None and settings.dr_nim_server_port is None
    assert settings.max_watchdog_restarts == 10  # DRUM's own MAX_RESTARTS
    assert settings.drum_openai_client_timeout < settings.drum_client_request_timeout


def test_a_port_given_as_text_is_read_as_a_number():
    assert load_settings({"DR_NIM_SERVER_PORT": "8123"}).dr_nim_server_port == 8123
    assert load_settings({"DR_NIM_SERVER_PORT": ""}).dr_nim_server_port is None


@pytest.mark.parametrize(("params", "message"), [
    ({"DR_NIM_SERVER_PORT": "80a"}, "Runtime parameter 'DR_NIM_SERVER_PORT' is '80a'; allowed: a port number from 1 "
                                    "to 65535 written as digits, or empty for OPENAI_PORT."),
    ({"DR_NIM_SERVER_PORT": "70000"}, "Runtime parameter 'DR_NIM_SERVER_PORT' is '70000'; allowed: a port number"),
    ({"DR_NIM_HEALTH_ROUTE": "health"}, "Runtime parameter 'DR_NIM_HEALTH_ROUTE' is 'health'; allowed: a path that "
                                        "starts with /, such as NIM's /v1/health/ready (the default)."),
    ({"DRUM_OPENAI_CLIENT_TIMEOUT": 600}, "Runtime parameter 'DRUM_OPENAI_CLIENT_TIMEOUT' is 600; allowed: under "
                                          "DRUM_CLIENT_REQUEST_TIMEOUT (600), or DRUM gives up on a request whose "
                                          "chat call goes on running in NIM. Lower it, or raise DRUM_CLIENT_REQUEST_TIMEOUT."),
    ({"max_watchdog_restarts": -1}, "Runtime parameter 'max_watchdog_restarts' is -1; allowed: a whole number from 0 to 1000."),
])
def test_bad_values_name_the_parameter_and_what_is_allowed(params, message):
    with pytest.raises(ConfigError) as raised:
        load_settings(params)
    assert str(raised.value).startswith(message)


def test_no_request_timeout_leaves_the_client_timeout_free():
    settings = load_settings({"DRUM_OPENAI_CLIENT_TIMEOUT": 3600, "DRUM_CLIENT_REQUEST_TIMEOUT": 0})
    assert settings.drum_openai_client_timeout == 3600
