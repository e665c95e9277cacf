"""batch_deadline_seconds: finished rows come back, unfinished rows say the deadline passed, none is lost.

Rows are made slow deterministically: the fault proxy holds their requests for HELD seconds.
"""

import re
import threading

import pandas as pd
import pytest

from nim_drum.config.drum_run import DrumRun
from nim_drum.devtools.local_drum import run_drum_score
from nim_drum.errors import ConfigError, RowsFailedError
from nim_drum.serving.deadline import deadline_seconds

from helpers import TARGET, external_params, load_settings, runtime_env, score_through

DEADLINE = 4  # far above an 8-token answer on a quiet machine
HELD = DEADLINE * 2
PROMPTS = ["Say hi. (row 0)", "Say hi. (row slow 1)", "Say hi. (row 2)", "Say hi. (row slow 3)"]
# 2 of 4 rows in 4 s: 0.5 rows/s; 4 rows need ceil(4 / 0.5 / 0.8) = 10 s (serving/chunks.py's margin).
AT_THE_DEADLINE = re.compile(
    rf"deadline exceeded after {DEADLINE} s: 2 of 4 rows finished; at 0\.50 rows/s, a chunk fits in (\d+) bytes "
    r"\(BatchPredictionJob\.score chunk_size=\1\), or raise batch_deadline_seconds to 10; rerun these rows"
)


def assert_deadline_rows(errors, rows):
    assert [bool(AT_THE_DEADLINE.fullmatch(error)) for error in errors] == [row in rows for row in range(len(errors))]


def test_rows_unfinished_at_the_deadline_say_what_would_have_fitted_and_the_rest_are_kept(fault_proxy):
    fault_proxy.inject("slow", times=2, match="row slow", seconds=HELD)
    result = score_through(fault_proxy, PROMPTS, batch_deadline_seconds=DEADLINE)
    assert len(result) == 4
    assert_deadline_rows(result["error"].tolist(), {1, 3})
    assert [e for e in result["error"] if e][0].count("chunk_size=") == 1
    assert (result[TARGET].iloc[[0, 2]].str.strip() != "").all() and (result[TARGET].iloc[[1, 3]] == "").all()


def test_no_request_is_sent_after_the_deadline(fault_proxy):
    # max_retries 5 would retry a timed-out attempt; past the deadline no retry may reach the engine.
    fault_proxy.inject("slow", times=100, match="row slow", seconds=HELD)
    score_through(fault_proxy, ["Say hi. (row slow 1)"], batch_deadline_seconds=DEADLINE, max_retries=5)
    for thread in threading.enumerate():  # the abandoned request's thread ends soon after the deadline
        if thread.name.startswith("score"):
            thread.join(timeout=HELD * 3)
    attempts = fault_proxy.attempts_matching("row slow")
    assert len(attempts) == 1, [a.at - attempts[0].at for a in attempts]


def test_on_row_error_fail_counts_deadline_rows_as_engine_failures(fault_proxy):
    fault_proxy.inject("slow", match="row slow", seconds=HELD)
    with pytest.raises(RowsFailedError) as error:
        score_through(fault_proxy, PROMPTS[:2], batch_deadline_seconds=DEADLINE, on_row_error="fail")
    assert error.value.status_code == 502
    assert f"row 1: deadline exceeded after {DEADLINE} s: 1 of 2 rows finished" in str(error.value)


@pytest.mark.parametrize(
    "params, argv, seconds",
    [
        ({}, ["drum", "server"], 540),  # 90% of DRUM 1.18.1's default request timeout, 600 s
        ({"DRUM_CLIENT_REQUEST_TIMEOUT": 100, "DRUM_OPENAI_CLIENT_TIMEOUT": 90}, ["drum", "server"], 90),
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
    fault_proxy.inject("slow", times=2, match="row slow", seconds=HELD)
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"promptText": PROMPTS}).to_csv(source, index=False)
    with open(tmp_path / "drum-score.log", "wb") as log:
        run_drum_score(code_dir, source, output, runtime_env(external_params(fault_proxy, batch_deadline_seconds=DEADLINE)), log)
    predictions = pd.read_csv(output, keep_default_na=False)
    assert_deadline_rows(predictions["error"].tolist(), {1, 3})



@pytest.mark.parametrize("value", [-1, 3601, 2.5, "never"])
def test_bad_drum_request_timeouts_fail_at_start_naming_the_parameter(value):
    with pytest.raises(ConfigError, match="'DRUM_CLIENT_REQUEST_TIMEOUT' is .*allowed: a whole number from 0 to 3600"):
        load_settings({"DRUM_CLIENT_REQUEST_TIMEOUT": value})
