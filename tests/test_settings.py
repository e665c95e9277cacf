"""Runtime parameters: metadata defaults, DRUM's environment, coercion and clear errors."""

import pytest
import yaml

from nim_drum.config.settings import Settings
from nim_drum.errors import ConfigError
from nim_drum.serving.requests import sampling

from helpers import REPO, load_settings, runtime_env


def load(**params):
    return load_settings(params)


def test_metadata_defaults_apply_without_a_values_file():
    settings = Settings.load(REPO, environ={})
    assert settings.prompt_column_name == "promptText"
    assert settings.max_concurrency == 256 and settings.adaptive_concurrency is True
    assert settings.engine == "embedded"
    assert settings.system_prompt.startswith("You are a helpful AI assistant.")
    assert load(system_prompt=None).system_prompt is None


def test_numeric_strings_are_coerced():
    settings = load(max_tokens="12", temperature="0.5")
    assert settings.max_tokens == 12 and isinstance(settings.max_tokens, int)
    assert settings.temperature == 0.5


def test_temperature_zero_is_sent_not_dropped():
    assert sampling(load(temperature=0))["temperature"] == 0


def test_seed_and_stop_are_sent_only_when_set():
    assert "seed" not in sampling(load()) and "stop" not in sampling(load())
    sent = sampling(load(seed=7, stop='["\\n\\n", "END"]'))
    assert sent["seed"] == 7 and sent["stop"] == ["\n\n", "END"]
    assert sampling(load(stop="###"))["stop"] == ["###"]


@pytest.mark.parametrize(
    "name, value, allowed",
    [
        ("temperature", 5, "from 0 to 2"),
        ("temperature", "hot", "from 0 to 2"),
        ("max_tokens", 0, "whole number from 1"),
        ("n", 0, "whole number from 1 to 16"),
        ("n", 1.5, "whole number"),
        ("max_concurrency", 0, "whole number from 1 to 1024"),
        ("engine", "tensorrt", "embedded, vllm, external"),
        ("NIM_LOG_LEVEL", "LOUD", "DEFAULT, TRACE"),
        ("stop", '["a", 3]', "JSON list"),
    ],
)
def test_invalid_values_name_the_parameter_the_value_and_what_is_allowed(name, value, allowed):
    with pytest.raises(ConfigError) as error:
        load(**{name: value})
    message = str(error.value)
    assert f"'{name}'" in message and repr(value) in message and allowed in message


def test_external_engine_needs_an_http_base_url():
    with pytest.raises(ConfigError, match="'base_url'.*http"):
        load(engine="external")
    assert load(engine="external", base_url="http://nim:8000/v1").base_url == "http://nim:8000/v1"


def test_a_credential_of_the_wrong_shape_is_described_without_its_secret():
    with pytest.raises(ConfigError) as error:
        load(NGC_API_KEY={"credentialType": "basic", "password": "canary-ngc-secret"})
    assert "'NGC_API_KEY'" in str(error.value) and "apiToken" in str(error.value)
    assert "canary-ngc-secret" not in str(error.value)


def test_credentials_are_read_and_kept_out_of_repr():
    settings = load(engine_api_key={"credentialType": "api_token", "apiToken": "canary-key"})
    assert settings.engine_api_key == "canary-key"
    assert "canary-key" not in repr(settings)


def test_an_envelope_that_is_not_json_names_the_variable():
    env = runtime_env()
    env["MLOPS_RUNTIME_PARAM_max_tokens"] = "twelve"
    with pytest.raises(ConfigError, match="MLOPS_RUNTIME_PARAM_max_tokens is not JSON"):
        Settings.load(REPO, environ=env)


def test_every_parameter_drums_nim_predictor_reads_has_a_default():
    # DRUM's BaseOpenAiGpuPredictor does int(...) on these; a declared one with no default crashes it.
    definitions = {d["fieldName"]: d for d in yaml.safe_load((REPO / "model-metadata.yaml").read_text())["runtimeParameterDefinitions"]}
    for name in ("n", "max_tokens", "temperature", "prompt_column_name", "served_model_name", "verifySSL"):
        assert definitions[name].get("defaultValue") is not None, name


def test_every_parameter_has_a_type_and_a_description():
    for definition in yaml.safe_load((REPO / "model-metadata.yaml").read_text())["runtimeParameterDefinitions"]:
        assert definition["type"] in ("string", "numeric", "boolean", "credential"), definition
        assert definition.get("description"), definition["fieldName"]
        if definition["type"] == "numeric":
            assert "minValue" in definition and "maxValue" in definition, definition["fieldName"]


def test_the_suites_canaries_cover_every_credential_parameter():
    from helpers import CANARIES

    definitions = yaml.safe_load((REPO / "model-metadata.yaml").read_text())["runtimeParameterDefinitions"]
    assert {d["fieldName"] for d in definitions if d["type"] == "credential"} == set(CANARIES)


def test_a_rejected_base_url_is_quoted_without_its_user_info():
    with pytest.raises(ConfigError) as error:
        load(engine="external", base_url="ftp://alice:canary-url-password@nim:8000/v1")
    assert "ftp://nim:8000/v1" in str(error.value) and "canary-url-password" not in str(error.value)


def test_a_stop_of_whitespace_is_kept_as_it_is():
    assert sampling(load(stop="\n"))["stop"] == ["\n"]
    assert sampling(load(stop=" "))["stop"] == [" "]
    assert "stop" not in sampling(load(stop=""))


def test_an_unknown_gunicorn_worker_class_fails_at_start_instead_of_drum_falling_back_to_sync():
    with pytest.raises(ConfigError, match="'DRUM_GUNICORN_WORKER_CLASS' is 'eventlet'; allowed: sync, gevent"):
        load(DRUM_GUNICORN_WORKER_CLASS="eventlet")
    assert load(DRUM_GUNICORN_WORKER_CLASS="GEVENT").drum_gunicorn_worker_class == "gevent"
