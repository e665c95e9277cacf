"""The raising policy (nim_drum/errors.py): causes are kept, with secrets taken out of their text."""

import traceback

import pytest

from nim_drum.engines.external import connect_external
from nim_drum.errors import EngineError
from nim_drum.redaction import redacted_cause

from helpers import free_port, load_settings


def test_a_redacted_cause_keeps_the_type_and_drops_user_info_and_signed_queries():
    cause = redacted_cause(ConnectionError("refused: https://alice:canary-pw@store:9000/m.tgz?X-Sig=canary-sig"))
    assert str(cause) == "ConnectionError: refused: https://store:9000/m.tgz?<redacted>"


def test_an_unreachable_base_url_keeps_its_cause_without_the_password():
    url = f"http://alice:canary-pw@127.0.0.1:{free_port()}/v1?sig=canary-sig"
    with pytest.raises(EngineError) as error:
        connect_external(load_settings({"engine": "external", "base_url": url}))
    text = "".join(traceback.format_exception(error.value))
    assert "ConnectionError" in text and "cannot be reached" in text
    assert "canary-pw" not in text and "canary-sig" not in text
