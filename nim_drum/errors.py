"""The errors this package raises. Each message says what was wrong and what to do next."""

from datarobot_drum.drum.exceptions import CustomHTTPError


class DropinError(Exception):
    """Base class for every error raised by nim_drum."""


class ConfigError(DropinError):
    """A runtime parameter or a file in the code directory is invalid."""


class EngineError(DropinError):
    """The inference engine could not be started or reached."""


class ClientError(DropinError, CustomHTTPError):
    """The caller sent something invalid; DRUM answers it with this 4xx status, not 500."""

    def __init__(self, message: str, status_code: int = 400):
        CustomHTTPError.__init__(self, message, status_code)
