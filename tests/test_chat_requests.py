"""Chat request validation, with no engine: a bad request is a 4xx before anything is sent.

The client is a real OpenAI client pointed at a port where nothing listens: a request that passes
validation fails there with a connection error, so a ClientError shows it never got as far as the engine.
"""

import openai
import pytest

from nim_drum.config.layout import DEFAULT_MODEL_NAME
from nim_drum.errors import ClientError
from nim_drum.serving.chat import StreamError, chat

from helpers import free_port

SERVED = "smollm2"
NOWHERE = openai.OpenAI(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="unused", max_retries=0, timeout=5)


def refused(params):
    with pytest.raises(ClientError) as error:
        chat(params, NOWHERE, SERVED)
    return error.value


@pytest.mark.parametrize("params", [None, [], "hello", 42])
def test_a_body_that_is_not_an_object_is_a_400(params):
    error = refused(params)
    assert error.status_code == 400 and "JSON object with a 'messages' list" in str(error)


@pytest.mark.parametrize("params", [{}, {"messages": []}, {"messages": "hi"}])
def test_missing_or_empty_messages_are_a_400(params):
    error = refused(params)
    assert error.status_code == 400 and "'messages' is missing or empty" in str(error)


def test_an_unknown_role_is_named_with_its_position_and_the_allowed_roles():
    error = refused({"messages": [{"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}]})
    assert error.status_code == 400
    assert "messages[1] has role 'wizard'" in str(error) and "system, developer, user, assistant, tool" in str(error)


def test_a_message_that_is_not_an_object_is_a_400():
    assert "messages[0] has role None" in str(refused({"messages": ["hi"]}))


def test_another_models_name_is_a_404_that_names_what_is_served():
    error = refused({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]})
    assert error.status_code == 404
    assert "'gpt-9' is not served here" in str(error) and repr(SERVED) in str(error)
    assert DEFAULT_MODEL_NAME in str(error)


@pytest.mark.parametrize("model", [None, "", DEFAULT_MODEL_NAME, SERVED])
def test_the_served_name_the_default_name_or_none_pass_validation(model):
    # Validation passes, so the request is sent, and finds nothing listening.
    with pytest.raises(openai.APIConnectionError):
        chat({"model": model, "messages": [{"role": "user", "content": "hi"}]}, NOWHERE, SERVED)


def test_a_stream_error_event_is_what_the_openai_sdk_reads_as_an_error():
    event = StreamError("The engine's stream ended early.")
    assert event.to_json() == '{"error": {"message": "The engine\'s stream ended early.", "type": "engine_error"}}'
    assert event.choices == [] and event.object == "chat.completion.chunk"
