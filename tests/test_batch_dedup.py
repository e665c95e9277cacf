"""Deterministic requests that are identical within one batch reach the engine once.

The proxy in front of the real engine counts the chat requests the engine receives.
"""

import logging

import pandas as pd
import pytest

from nim_drum.devtools.local_drum import run_drum_score

from helpers import TARGET, external_params, runtime_env, score_through


def chat_requests(proxy, text=""):
    return len(proxy.attempts_matching(text))


def test_identical_prompts_at_temperature_0_are_sent_once_and_fanned_out(fault_proxy, caplog):
    prompts = ["Name a fruit. (a)", "Name a color. (b)"] * 3 + ["Name a fruit. (a)"]
    with caplog.at_level(logging.INFO, logger="nim_drum"):
        result = score_through(fault_proxy, pd.DataFrame({"promptText": prompts}))
    assert chat_requests(fault_proxy, "(a)") == 1 and chat_requests(fault_proxy, "(b)") == 1
    assert len(result) == 7 and (result["error"] == "").all()
    assert result[TARGET].iloc[[0, 2, 4, 6]].nunique() == 1 and result[TARGET].iloc[0] != ""
    assert (result["completion_tokens"] > 0).all()
    assert "rows=7 succeeded=7" in caplog.text and "deduplicated=5" in caplog.text


def test_a_seed_makes_sampling_deterministic_too(fault_proxy):
    score_through(fault_proxy, pd.DataFrame({"promptText": ["Name a fruit. (s)"] * 4}), temperature=0.8, seed=7)
    assert chat_requests(fault_proxy, "(s)") == 1


@pytest.mark.parametrize("params", [{"temperature": 0.8}, {"temperature": 0, "n": 2}])
def test_sampled_requests_are_all_sent(fault_proxy, params):
    score_through(fault_proxy, pd.DataFrame({"promptText": ["Name a fruit. (r)"] * 3}), **params)
    assert chat_requests(fault_proxy, "(r)") == 3


def test_rows_whose_filled_templates_differ_are_not_merged(fault_proxy):
    frame = pd.DataFrame({"promptText": ["Name a fruit. (t)"] * 2, "label": ["x", "y"]})
    score_through(fault_proxy, frame, prompt_template="{promptText} {label}")
    assert chat_requests(fault_proxy, "(t)") == 2


def test_drum_score_sends_a_repeated_prompt_once(fault_proxy, code_dir, tmp_path):
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    prompts = [f"What is {i} + {i}? (d{i})" for i in range(4)] * 5
    pd.DataFrame({"promptText": prompts}).to_csv(source, index=False)
    with open(tmp_path / "drum-score.log", "wb") as log:
        # DRUM shows INFO lines, such as the batch summary, only at --logging-level info.
        run_drum_score(code_dir, source, output, runtime_env(external_params(fault_proxy)), log,
                       args=["--logging-level", "info"])
    predictions = pd.read_csv(output, keep_default_na=False)
    assert len(predictions) == 20 and (predictions["error"] == "").all()
    assert chat_requests(fault_proxy, "(d") == 4
    assert "deduplicated=16" in (tmp_path / "drum-score.log").read_text()
