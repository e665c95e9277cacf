"""Row-failure reporting, with no engine: the batch summary, on_row_error=fail's status and message,
and the output frame that keeps one row per input row."""

import pandas as pd
import pytest

from nim_drum.errors import RowsFailedError
from nim_drum.serving.results import RowResult, batch_summary, raise_for_failed_rows, to_frame

OK = RowResult(["Paris."], finish_reason="stop", prompt_tokens=10, completion_tokens=3)
EMPTY = RowResult([], error="empty prompt: the prompt cell is empty, blank or missing", input_fault=True)
ENGINE_DOWN = RowResult([], error="APIConnectionError: Connection error.", retries=3)


def failure(results):
    with pytest.raises(RowsFailedError) as error:
        raise_for_failed_rows(results)
    return error.value


def test_no_failed_row_raises_nothing():
    raise_for_failed_rows([OK, OK])


def test_only_bad_rows_is_a_422_that_lists_them_from_zero():
    error = failure([OK, EMPTY, OK, EMPTY])
    assert error.status_code == 422
    assert str(error).startswith("2 of 4 rows failed (rows numbered from 0): row 1: empty prompt")
    assert "row 3: empty prompt" in str(error) and "on_row_error=record" in str(error)


def test_any_engine_failure_makes_it_a_502():
    assert failure([EMPTY, ENGINE_DOWN, OK]).status_code == 502


def test_a_long_list_of_failures_is_cut_and_says_how_many_more():
    message = str(failure([EMPTY] * 25))
    assert "row 19: empty prompt" in message and "row 20:" not in message and "and 5 more" in message


def test_the_summary_counts_rows_retries_failures_and_tokens():
    line = batch_summary([OK, EMPTY, ENGINE_DOWN, RowResult(["x"], completion_tokens=5, retries=1)], 2.0, 3)
    assert line.startswith("Batch scored: rows=4 succeeded=2 retried=2 failed=2 seconds=2.00 completion_tokens=8")
    assert line.endswith("tokens/s=4.0 deduplicated=3")


def test_the_frame_keeps_every_row_in_order_with_its_error():
    frame = to_frame([OK, EMPTY, ENGINE_DOWN], "completion", pd.RangeIndex(3), with_choices=False)
    assert frame["completion"].tolist() == ["Paris.", "", ""]
    assert frame["error"].tolist() == ["", EMPTY.error, ENGINE_DOWN.error]
    assert frame["finish_reason"].tolist() == ["stop", "", ""] and frame["completion_tokens"].tolist() == [3, 0, 0]
    assert "choices" not in frame


def test_all_choices_go_to_a_json_column_when_n_is_above_one():
    frame = to_frame([RowResult(["a", "b"]), EMPTY], "completion", pd.RangeIndex(2), with_choices=True)
    assert frame["choices"].tolist() == ['["a", "b"]', "[]"] and frame["completion"].tolist() == ["a", ""]
