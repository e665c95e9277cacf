"""batch_deadline_seconds: finished rows come back, unfinished rows say the deadline passed, none is lost.

Rows are made slow deterministically: the fault proxy holds their requests for SLOW_SECONDS.
"""

import threading

import pandas as pd
import pytest

from nim_drum.config.drum_run import DrumRun
from nim_drum.devtools.local_drum import run_drum_score
from nim_drum.errors import ConfigError, RowsFailedError
from nim_drum.serving.deadline import deadline_seconds

from faultproxy import SLOW_SECONDS
from helpers import TARGET, external_params, load_settings, runtime_env, score_through

DEADLINE = 8
PROMPTS = ["Say hi. (row 0)", "Say hi. (row slow 1)", "Say hi. (row 2)", "Say hi. (row slow 3)"]


def deadline_error(seconds):
    return f"deadline exceeded after {seconds} s; rerun these rows or raise batch_deadline_seconds"


def test_rows_unfinished_at_the_deadline_get_a_deadline_error_and_the_rest_are_kept(fault_proxy):
    assert SLOW_SECONDS > DEADLINE
    fault_proxy.inject("slow", times=2, match="row slow")
    result = score_through(fault_proxy, PROMPTS, batch_deadline_seconds=DEADLINE)
    assert len(result) == 4
    assert result["error"].tolist() == ["", deadline_error(DEADLINE), "", deadline_error(DEADLINE)]
    assert (result[TARGET].iloc[[0, 2]].str.strip() != "").all() and (result[TARGET].iloc[[1, 3]] == "").all()


def test_no_request_is_sent_after_the_deadline(fault_proxy):
    # max_retries 5 would retry a timed-out attempt; past the deadline no retry may reach the engine.
    fault_proxy.inject("slow", times=100, match="row slow")
    score_through(fault_proxy, ["Say hi. (row slow 1)"], batch_deadline_seconds=DEADLINE, max_retries=5)
    for thread in threading.enumerate():  # the abandoned request's thread ends soon after the deadline
        if thread.name.startswith("score"):
            thread.join(timeout=SLOW_SECONDS * 3)
    attempts = fault_proxy.attempts_matching("row slow")
    assert len(attempts) == 1, [a.at - attempts[0].at for a in attempts]


def test_on_row_error_fail_counts_deadline_rows_as_engine_failures(fault_proxy):
    fault_proxy.inject("slow", match="row slow")
    with pytest.raises(RowsFailedError) as error:
        score_through(fault_proxy, PROMPTS[:2], batch_deadline_seconds=DEADLINE, on_row_error="fail")
    assert error.value.status_code == 502
    assert f"row 1: {deadline_error(DEADLINE)}" in str(error.value)


@pytest.mark.parametrize(
    "params, argv, seconds",
    [
        ({}, ["drum", "server"], 540),  # 90% of DRUM 1.18.1's default request timeout, 600 s
        ({"DRUM_CLIENT_REQUEST_TIMEOUT": 100}, ["drum", "server"], 90),
        ({"DRUM_CLIENT_REQUEST_TIMEOUT": 0}, ["drum", "server"], None),  # DRUM's timeout is off
        ({}, ["drum", "score"], None),  # drum score has no request timeout
        ({"batch_deadline_seconds": 30}, ["drum", "score"], 30),
    ],
)
def test_the_default_deadline_stays_under_drums_request_timeout(params, argv, seconds):
    assert deadline_seconds(load_settings(params), DrumRun.detect(argv=argv, environ={})) == seconds


@pytest.mark.parametrize("value", [0, -5, "soon", 100000])
def test_bad_deadlines_fail_at_start_naming_the_parameter(value):
    with pytest.raises(ConfigError, match="'batch_deadline_seconds' is .*allowed: a number from 1 to 86400"):
        load_settings({"batch_deadline_seconds": value})


def test_drum_score_returns_every_row_at_the_deadline(fault_proxy, code_dir, tmp_path):
    fault_proxy.inject("slow", times=2, match="row slow")
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"promptText": PROMPTS}).to_csv(source, index=False)
    with open(tmp_path / "drum-score.log", "wb") as log:
        run_drum_score(code_dir, source, output, runtime_env(external_params(fault_proxy, batch_deadline_seconds=DEADLINE)), log)
    predictions = pd.read_csv(output, keep_default_na=False)
    assert predictions["error"].tolist() == ["", deadline_error(DEADLINE), "", deadline_error(DEADLINE)]



@pytest.mark.parametrize("value", [-1, 3601, 2.5, "never"])
def test_bad_drum_request_timeouts_fail_at_start_naming_the_parameter(value):
    with pytest.raises(ConfigError, match="'DRUM_CLIENT_REQUEST_TIMEOUT' is .*allowed: a whole number from 0 to 3600"):
        load_settings({"DRUM_CLIENT_REQUEST_TIMEOUT": value})
