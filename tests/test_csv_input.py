"""Reading the prediction CSV, with no engine and no DRUM: every way it can be wrong is a clear 400."""

import pytest

from nim_drum.errors import ClientError
from nim_drum.serving.csv_input import read_csv


@pytest.mark.parametrize(
    "body, words",
    [
        (b"", ["The input is empty"]),
        (b"\n\n\n", ["The input is empty"]),
        (b",\n1\n", ["no columns"]),
        (b"promptText,promptText\na,b\n", ["duplicate", "'promptText'"]),
        (b"promptText\n\xe9t\xe9\n", ["not UTF-8", "0xe9", "offset 11"]),
        (b'promptText,id\n"unclosed,1\n', ["not valid CSV"]),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_wrong(body, words):
    with pytest.raises(ClientError) as error:
        read_csv(body)
    assert error.value.status_code == 400
    for word in words:
        assert word in str(error.value)


def test_cells_stay_text_as_written():
    frame = read_csv(b"promptText\n42\nNA\nnull\n007\n")
    assert frame["promptText"].tolist() == ["42", "NA", "null", "007"]


def test_a_utf8_bom_is_dropped_from_the_first_column_name():
    assert read_csv("\ufeffpromptText\nhi\n".encode()).columns.tolist() == ["promptText"]


def test_blank_lines_are_empty_prompts_in_a_one_column_file():
    assert read_csv(b"promptText\na\n\nb\n")["promptText"].tolist() == ["a", "", "b"]


def test_blank_lines_are_dropped_when_there_are_several_columns():
    frame = read_csv(b"promptText,id\na,1\n\nb,2\n")
    assert frame["promptText"].tolist() == ["a", "b"] and frame.index.tolist() == [0, 1]


def test_a_line_of_empty_cells_is_a_row_and_is_kept():
    frame = read_csv(b"promptText,id\na,1\n,\nb,2\n")
    assert frame["promptText"].tolist() == ["a", "", "b"] and frame["id"].tolist() == ["1", "", "2"]


def test_quotes_commas_newlines_and_non_latin_text_survive():
    prompts = ['Say "hi", please', "Line one\nline two", "ترجم: مرحبا", "a,b,c"]
    body = "promptText\n" + "".join('"' + p.replace('"', '""') + '"\n' for p in prompts)
    assert read_csv(body.encode())["promptText"].tolist() == prompts


def test_a_header_only_file_has_no_rows():
    frame = read_csv(b"promptText\n")
    assert frame.columns.tolist() == ["promptText"] and len(frame) == 0
