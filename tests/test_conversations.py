"""Whole conversations per row (messages_column_name): a JSON list of OpenAI chat messages in a CSV cell,
sent through the fault proxy to the real embedded engine, so the tests see every request body."""

import json

import pandas as pd
import pytest

from nim_drum.errors import ClientError

from helpers import TARGET, score_through

SYSTEM = "You are a helpful AI assistant."
HISTORY = [
    {"role": "user", "content": "My name is Ada."},
    {"role": "assistant", "content": "Nice to meet you, Ada!"},
    {"role": "user", "content": "Repeat my name."},
]


def bodies(proxy):
    return [json.loads(attempt.body) for attempt in proxy.attempts if attempt.body.startswith("{")]


def test_a_conversation_is_continued_and_system_prompt_added_only_without_one(fault_proxy):
    own_system = [{"role": "system", "content": "Answer in one word."}, *HISTORY]
    data = pd.DataFrame({"promptText": ["", "", "What is 2 + 2?"],
                         "chat": [json.dumps(HISTORY), json.dumps(own_system), ""]})
    result = score_through(fault_proxy, data, messages_column_name="chat", system_prompt=SYSTEM, max_tokens=16)
    assert (result["error"] == "").all(), result["error"].tolist()
    assert "Ada" in result[TARGET].iloc[0]  # the name is only in the history
    sent = [body["messages"] for body in bodies(fault_proxy)]
    history_sent = [m for m in sent if m[-1] == HISTORY[-1]]
    assert sorted(len(m) for m in history_sent) == [4, 4]
    assert {m[0]["content"] for m in history_sent} == {SYSTEM, "Answer in one word."}  # never two system messages
    assert all(sum(x["role"] == "system" for x in m) == 1 for m in history_sent)
    prompt_row = [m for m in sent if m[-1]["content"] == "What is 2 + 2?"]
    assert prompt_row == [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is 2 + 2?"}]]


@pytest.mark.parametrize(("cell", "says"), [
    ("[{'role': 'user'}]", "is not JSON"),
    ('{"role": "user", "content": "hi"}', "is a JSON object, not a list"),
    ("[]", "empty list"),
    ('["hi"]', "message 0 as a JSON string"),
    ('[{"role": "wizard", "content": "hi"}]', "role 'wizard'; allowed roles: system, developer, user, assistant"),
    ('[{"role": "user"}]', "message 0 (user) with no content"),
    ('[{"role": "user", "content": "  "}]', "message 0 (user) with no content"),
    ('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]',
     "ends with a message from 'assistant'; the last message must be from the user"),
])
def test_a_malformed_conversation_is_a_row_error_saying_what_is_wrong(fault_proxy, cell, says):
    data = pd.DataFrame({"chat": [json.dumps(HISTORY), cell, json.dumps(HISTORY)]})
    result = score_through(fault_proxy, data, messages_column_name="chat", max_tokens=4)
    assert len(result) == 3 and result["error"].iloc[0] == "" and result["error"].iloc[2] == ""
    error = result["error"].iloc[1]
    assert error.startswith("the conversation in column 'chat' ") and says in error, error
    assert result["latency_ms"].iloc[1] == 0


def test_conversation_rows_are_deduplicated_and_keep_structured_output(fault_proxy):
    schema = '{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}'
    data = pd.DataFrame({"chat": [json.dumps(HISTORY)] * 3})
    result = score_through(fault_proxy, data, messages_column_name="chat", response_format=schema, max_tokens=24)
    assert (result["error"] == "").all(), result["error"].tolist()
    assert all("name" in json.loads(answer) for answer in result[TARGET])
    assert len(bodies(fault_proxy)) == 1  # three identical greedy rows, one request
    assert bodies(fault_proxy)[0]["response_format"]["type"] == "json_schema"


def test_a_missing_messages_column_names_the_parameter_and_the_columns(fault_proxy):
    with pytest.raises(ClientError) as error:
        score_through(fault_proxy, pd.DataFrame({"promptText": ["hi"]}), messages_column_name="chat")
    assert "'chat'" in str(error.value) and "messages_column_name" in str(error.value)
    assert "'promptText'" in str(error.value) and error.value.status_code == 400


def test_without_a_prompt_column_an_empty_conversation_is_a_row_error(fault_proxy):
    data = pd.DataFrame({"chat": [json.dumps(HISTORY), ""]})
    result = score_through(fault_proxy, data, messages_column_name="chat", max_tokens=4)
    assert result["error"].iloc[0] == "" and "empty conversation" in result["error"].iloc[1]


def test_a_10_mb_cell_is_a_row_error_and_no_row_is_lost(fault_proxy):
    huge = "word " * 2_000_000  # 10 MB
    huge_chat = json.dumps([{"role": "user", "content": huge}])
    data = pd.DataFrame({"promptText": ["What is 2 + 2?", huge, ""], "chat": ["", "", huge_chat]})
    result = score_through(fault_proxy, data, messages_column_name="chat", max_tokens=4)
    assert len(result) == 3 and result["error"].iloc[0] == ""
    assert "the prompt is 10,000,000 characters; at most 1,000,000 are sent" in result["error"].iloc[1]
    assert "the conversation in column 'chat' is 10,000,0" in result["error"].iloc[2]
    assert all(len(attempt.body) < 100_000 for attempt in fault_proxy.attempts)  # neither was sent
