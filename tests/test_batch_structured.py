"""response_format: answers constrained to JSON (a schema, or any object) by the real engine."""

import json
import subprocess

import pandas as pd
import pytest

from nim_drum.devtools.local_drum import run_drum_score
from nim_drum.errors import ConfigError

from helpers import TARGET, load_settings, runtime_env, score_with

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population_millions": {"type": "integer"}},
    "required": ["city", "population_millions"],
}
PROMPTS = [f"Name a large city in {country} and its population in millions, as JSON." for country in
           ("France", "Japan", "Brazil", "India", "Egypt", "Canada")]


def score(engine, prompts, **params):
    settings = load_settings(params)
    frame = pd.DataFrame({"promptText": prompts})
    return score_with(engine, settings, frame)


def matches_schema(answer: str) -> bool:
    value = json.loads(answer)
    return (
        isinstance(value, dict) and isinstance(value.get("city"), str)
        and isinstance(value.get("population_millions"), int) and not isinstance(value["population_millions"], bool)
    )


def test_every_answer_parses_and_matches_the_schema(engine):
    result = score(engine, PROMPTS, response_format=json.dumps(SCHEMA), max_tokens=64)
    assert (result["error"] == "").all(), result["error"].tolist()
    assert all(matches_schema(answer) for answer in result[TARGET]), result[TARGET].tolist()


def test_json_object_gives_json_objects(engine):
    prompts = [f"Give the capital of {country} as a JSON object with the key city." for country in ("France", "Japan")]
    result = score(engine, prompts, response_format="json_object", max_tokens=128)
    assert (result["error"] == "").all(), result["error"].tolist()
    assert all(isinstance(json.loads(answer), dict) for answer in result[TARGET])


def test_an_answer_that_is_not_json_keeps_its_text_and_gets_a_row_error(engine):
    result = score(engine, PROMPTS[:1], response_format=json.dumps(SCHEMA), max_tokens=3)
    assert result[TARGET].iloc[0].startswith("{") and result["finish_reason"].iloc[0] == "length"
    assert "not valid JSON" in result["error"].iloc[0] and "max_tokens" in result["error"].iloc[0]


@pytest.mark.parametrize(
    "value, words",
    [
        ("json", ["not JSON", "json_object"]),
        ('{"type": "objekt"}', ["'objekt'"]),
        ('["city"]', ["not an object"]),
        ('{"type": "object", "properties": {"city": "string"}}', ["property 'city'"]),
        ('{"type": "object", "required": "city"}', ["'required'"]),
    ],
)
def test_invalid_response_formats_fail_at_start_naming_the_parameter(value, words):
    with pytest.raises(ConfigError) as error:
        load_settings({"response_format": value})
    assert "'response_format'" in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_drum_score_returns_json_under_a_schema(code_dir, tmp_path):
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"promptText": PROMPTS}).to_csv(source, index=False)
    params = {"response_format": json.dumps(SCHEMA), "max_tokens": 64}
    with open(tmp_path / "drum-score.log", "wb") as log:
        run_drum_score(code_dir, source, output, runtime_env(params), log)
    predictions = pd.read_csv(output, keep_default_na=False)
    assert (predictions["error"] == "").all(), predictions["error"].tolist()
    assert all(matches_schema(answer) for answer in predictions["Predictions"])


def test_drum_score_stops_at_start_on_an_invalid_schema(code_dir, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("promptText\nhi\n")
    with open(tmp_path / "drum-score.log", "wb") as log, pytest.raises(subprocess.CalledProcessError):
        run_drum_score(code_dir, source, tmp_path / "out.csv", runtime_env({"response_format": "{nope"}), log)
    assert "'response_format' is not JSON" in (tmp_path / "drum-score.log").read_text()
