"""The errors this package raises. Each message says what was wrong and what to do next.

No DRUM import here: nim_drum.hooks turns a RequestError into DRUM's CustomHTTPError at the
hook boundary, so the rest of the package does not depend on DRUM.

Raising policy: an error raised while handling another keeps it as its cause, `raise ... from err`,
so the log shows both. Where the cause's text may hold a secret (a URL's user info or signed query
string), raise `from redacted_cause(err)` (nim_drum.redaction): the cause's type and its text with
every URL redacted. Settings errors keep pydantic's cause, which hides the inputs
(`hide_input_in_errors`). `from None` is not used.
"""


class DropinError(Exception):
    """Base class for every error raised by nim_drum."""


class ConfigError(DropinError):
    """A runtime parameter or a file in the code directory is invalid."""


class EngineError(DropinError):
    """The inference engine could not be started or reached."""


class RequestError(DropinError):
    """A request that fails with this HTTP status: DRUM sends it with the message, not a 500."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


class ClientError(RequestError):
    """The caller sent something invalid (a 4xx)."""

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message, status_code)


class EngineRefusedError(RequestError):
    """The engine refused a request because of this deployment's configuration, not the caller's (a 502)."""

    def __init__(self, message: str):
        super().__init__(message, 502)


class RowsFailedError(RequestError):
    """Rows failed with on_row_error=fail: 422 when the rows were bad, 502 when the engine failed."""


class ArtifactError(DropinError):
    """Model or LoRA artifacts could not be fetched, verified or put in place."""


class RedactedCause(Exception):
    """The cause of an error, as its type's name and its text with secrets taken out."""
