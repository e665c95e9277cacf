"""prompt_template: each row's prompt filled from its columns, through the real engine and the real DRUM."""

import json
import subprocess

import pandas as pd
import pytest

from nim_drum.devtools.local_drum import run_drum_score
from nim_drum.errors import ClientError, ConfigError

from helpers import TARGET, external_params, load_settings, runtime_env, score_through, score_with

TEMPLATE = "What is the capital of {country}? Answer in {style} words. {{literal}}"


def user_messages(proxy):
    return [json.loads(a.body)["messages"][-1]["content"] for a in proxy.attempts if '"messages"' in a.body]


def test_each_row_is_filled_from_its_columns(fault_proxy):
    frame = pd.DataFrame({"country": ["France", "Japan"], "style": ["two", ""], "id": ["1", "2"]})
    result = score_through(fault_proxy, frame, prompt_template=TEMPLATE, max_tokens=16)
    assert sorted(user_messages(fault_proxy)) == [
        "What is the capital of France? Answer in two words. {literal}",
        "What is the capital of Japan? Answer in  words. {literal}",
    ]
    assert "Paris" in result[TARGET].iloc[0] and (result["error"] == "").all()


def test_a_row_whose_named_cells_are_all_empty_is_a_row_error(fault_proxy):
    frame = pd.DataFrame({"country": ["France", "", None], "style": ["two", " ", None]})
    result = score_through(fault_proxy, frame, prompt_template=TEMPLATE)
    assert result["error"].iloc[0] == ""
    for error in result["error"].iloc[1:]:
        assert error.startswith("empty prompt") and "country, style" in error
    assert len(user_messages(fault_proxy)) == 1


def test_missing_columns_fail_the_request_naming_them_and_the_columns_present(engine):
    settings = load_settings({"prompt_template": TEMPLATE})
    with pytest.raises(ClientError) as error:
        score_with(engine, settings, pd.DataFrame({"country": ["France"], "region": ["EU"]}))
    message = str(error.value)
    assert error.value.status_code == 400
    assert "'style'" in message and "'country'" in message and "'region'" in message


@pytest.mark.parametrize(
    "template, words",
    [
        ("Summarise {review", ["prompt_template", "{{"]),
        ("Summarise this.", ["prompt_template", "names no input column"]),
        ("Summarise {}", ["prompt_template"]),
        ("Summarise {0}", ["prompt_template"]),
        ("Summarise {review!z}", ["prompt_template"]),
    ],
)
def test_malformed_templates_fail_at_start_naming_the_parameter(template, words):
    with pytest.raises(ConfigError) as error:
        load_settings({"prompt_template": template})
    for word in words:
        assert word in str(error.value)


def test_drum_score_fills_the_template_without_a_prompt_column(fault_proxy, code_dir, tmp_path):
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    # The id column keeps the second row: a CSV line with no text at all is no row (csv_input.py).
    pd.DataFrame({"country": ["France", ""], "style": ["two", ""], "id": ["1", "2"]}).to_csv(source, index=False)
    params = external_params(fault_proxy, prompt_template=TEMPLATE, max_tokens=16)
    with open(tmp_path / "drum-score.log", "wb") as log:
        run_drum_score(code_dir, source, output, runtime_env(params), log)
    predictions = pd.read_csv(output, keep_default_na=False)
    assert "Paris" in predictions["Predictions"].iloc[0]
    assert predictions["error"].iloc[1].startswith("empty prompt")


def test_drum_score_stops_at_start_on_a_malformed_template(code_dir, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("promptText\nhi\n")
    with open(tmp_path / "drum-score.log", "wb") as log, pytest.raises(subprocess.CalledProcessError):
        run_drum_score(code_dir, source, tmp_path / "out.csv", runtime_env({"prompt_template": "Hi {name"}), log)
    assert "'prompt_template' is not a valid template" in (tmp_path / "drum-score.log").read_text()

