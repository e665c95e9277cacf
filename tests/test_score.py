"""Batch scoring against the real embedded engine: order, shape, choices and per-row errors."""

import json
import math

import pandas as pd
import pytest

from nim_drum.errors import ClientError

from helpers import TARGET, BusySlotMonitor, engine_root, load_settings, score_with


def score(engine, prompts, **params):
    settings = load_settings(params)
    return score_with(engine, settings, pd.DataFrame({settings.prompt_column_name: prompts}))


def test_a_real_model_answers_a_simple_question(engine):
    result = score(engine, ["What is the capital of France?"], max_tokens=32)
    assert "Paris" in result[TARGET].iloc[0]
    assert result["finish_reason"].iloc[0] in ("stop", "length")
    assert result["prompt_tokens"].iloc[0] > 0 and result["completion_tokens"].iloc[0] > 0
    assert result["error"].iloc[0] == ""
    assert result["latency_ms"].iloc[0] > 0 and result["retries"].iloc[0] == 0


def test_rows_come_back_in_input_order(engine):
    # Prompt i has i+1 words, so the engine's own prompt-token counts prove which row is which.
    prompts = [" ".join(["word"] * (i + 1)) for i in range(12)]
    result = score(engine, prompts, max_tokens=4, max_concurrency=6)
    tokens = result["prompt_tokens"].tolist()
    assert len(result) == 12 and tokens == sorted(tokens) and len(set(tokens)) == 12


def test_requests_overlap_at_the_engine(engine):
    with BusySlotMonitor(engine_root(engine)) as monitor:
        score(engine, [f"Count from 1 to 30, then say {i}." for i in range(8)], max_tokens=48, max_concurrency=8)
    assert monitor.peak >= 2, "the engine never had two requests in flight at once"


def test_n_choices_keep_one_row_per_input(engine):
    result = score(engine, ["Name a fruit.", "Name a color."], n=2, temperature=1, max_tokens=8)
    assert len(result) == 2
    for cell in result["choices"]:
        assert len(json.loads(cell)) == 2
    assert result[TARGET].iloc[0] == json.loads(result["choices"].iloc[0])[0]


def test_the_system_prompt_is_sent_before_every_prompt(engine):
    short = score(engine, ["Hi", "Bye"], max_tokens=4, system_prompt="Be brief.")
    long = score(engine, ["Hi", "Bye"], max_tokens=4, system_prompt="Be brief. " + "Answer like a pirate. " * 10)
    assert (long["prompt_tokens"] - short["prompt_tokens"] >= 40).all()


def test_empty_prompts_fail_alone_and_no_row_is_lost(engine):
    result = score(engine, ["What is 2 + 2?", "", "   ", math.nan, None, 42], max_tokens=8)
    assert len(result) == 6
    assert [bool(e) for e in result["error"]] == [False, True, True, True, True, False]
    assert all("empty prompt" in e for e in result["error"][1:5])
    assert result[TARGET].iloc[1] == ""
    assert result["latency_ms"].iloc[1] == 0  # no request was sent


def test_a_prompt_longer_than_the_context_is_a_row_error(engine):
    result = score(engine, ["Say hi.", "hello " * 5000], max_tokens=8)
    assert result["error"].iloc[0] == ""
    assert result["error"].iloc[1].startswith("HTTP 400")


def test_a_missing_prompt_column_names_what_was_expected_and_what_is_there(engine):
    settings = load_settings()
    with pytest.raises(ClientError) as error:
        score_with(engine, settings, pd.DataFrame({"question": ["x"], "id": [1]}))
    message = str(error.value)
    assert "'promptText'" in message and "'question'" in message and "'id'" in message
    assert error.value.status_code == 400


def test_prompt_column_name_selects_another_column(engine):
    result = score(engine, ["What is the capital of France?"], prompt_column_name="question", max_tokens=16)
    assert "Paris" in result[TARGET].iloc[0]
