"""Bad input through the real `drum server`: a clear 4xx, or a per-row error with every other row kept."""

import pytest
import requests

from faultproxy import FaultProxy
from helpers import engine_root, make_code_dir, start_drum_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad-input")
    server = start_drum_server(make_code_dir(directory / "code"), directory / "drum.log", {"max_tokens": 16})
    yield server
    server.stop()


def predict(server, body: bytes):
    return requests.post(f"{server.url}/predictions", data=body, headers={"Content-Type": "text/csv"}, timeout=600)


def rows(response):
    assert response.status_code == 200, response.text
    body = response.json()
    columns = body["extraModelOutput"]["columns"]
    errors = [dict(zip(columns, row, strict=False))["error"] for row in body["extraModelOutput"]["data"]]
    return body["predictions"], errors


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"question\nWhat is 2 + 2?\n", 400, ["'promptText'", "'question'"]),
        (b"", 422, ["Samples should be provided"]),  # DRUM answers an empty body before our hook
        (b"\n\n\n", 400, ["empty"]),
        (b",\n1\n", 400, ["no columns"]),
        (b"promptText,promptText\na,b\n", 400, ["duplicate", "promptText"]),
        (b"promptText\n\xe9t\xe9\n", 400, ["not UTF-8", "0xe9"]),
        (b'promptText,id\n"unclosed,1\n', 400, ["not valid CSV"]),
    ],
)
def test_bad_files_get_a_4xx_that_says_what_is_wrong(server, body, status, words):
    response = predict(server, body)
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["message"]


def test_a_header_only_file_gives_no_rows(server):
    predictions, errors = rows(predict(server, b"promptText\n"))
    assert predictions == [] and errors == []


def test_a_utf8_bom_is_accepted(server):
    predictions, errors = rows(predict(server, "\ufeffpromptText\nWhat is the capital of France?\n".encode()))
    assert "Paris" in predictions[0] and errors == [""]


def test_empty_blank_and_numeric_prompts_keep_every_row(server):
    predictions, errors = rows(predict(server, b"promptText\nWhat is 2 + 2?\n\n   \n42\n"))
    assert len(predictions) == 4
    assert [bool(e) for e in errors] == [False, True, True, False]
    assert predictions[3] != ""


def test_a_prompt_longer_than_the_context_is_a_row_error(server):
    long_prompt = "hello " * 5000
    predictions, errors = rows(predict(server, f"promptText\nSay hi.\n{long_prompt}\n".encode()))
    assert errors[0] == "" and errors[1].startswith("HTTP 400")


def test_quotes_commas_newlines_emoji_and_rtl_text_survive(server):
    prompts = ['Say "hi", please', "Line one\nline two", "Reply with 👍", "ترجم: مرحبا", "a,b,c"]
    body = "promptText\n" + "".join('"' + p.replace('"', '""') + '"\n' for p in prompts)
    predictions, errors = rows(predict(server, body.encode()))
    assert len(predictions) == 5 and errors == [""] * 5


def test_ten_thousand_rows_come_back_with_bounded_memory(server):
    # Every 500th row is a real prompt; the rest are empty and fail alone without a request.
    lines = ["What is 1 + 1?" if i % 500 == 0 else "" for i in range(10_000)]
    before = server.memory_mb()
    predictions, errors = rows(predict(server, ("promptText\n" + "\n".join(lines) + "\n").encode()))
    assert len(predictions) == 10_000
    assert sum(1 for e in errors if not e) == 20
    assert server.memory_mb() - before < 300


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"{not json", 400, []),
        (b"{}", 400, ["messages"]),
        (b'{"messages": []}', 400, ["messages"]),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, ["wizard"]),
        (b'{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}', 404, ["gpt-9"]),
    ],
)
def test_bad_chat_requests_get_a_4xx(server, body, status, words):
    response = requests.post(
        f"{server.url}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.text


def test_a_stream_the_engine_cuts_off_reaches_the_sdk_as_an_error(engine, tmp_path):
    import openai

    proxy = FaultProxy(engine_root(engine))
    values = {"engine": "external", "base_url": f"{proxy.url}/v1"}
    server = start_drum_server(make_code_dir(tmp_path / "code"), tmp_path / "drum.log", values)
    try:
        proxy.inject("truncate")
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        stream = client.chat.completions.create(
            messages=[{"role": "user", "content": "Count from 1 to 30."}], model="", max_tokens=64, stream=True
        )
        with pytest.raises(openai.APIError, match="ended before the completion finished"):
            for _ in stream:
                pass
    finally:
        server.stop()
        proxy.close()
