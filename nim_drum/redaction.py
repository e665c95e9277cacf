"""Keeping secrets out of logs and error messages: URLs lose their user info and query string."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

from nim_drum.errors import RedactedCause

URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
QUERY = re.compile(r"\?[^\s\"'<>]+")  # a query string, also where a message quotes only a URL's path


def redact(uri: str) -> str:
    """The URI without user info, query string or fragment: URLs and signed URLs carry secrets there."""
    parts = urlsplit(uri)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return uri
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """Text with every URL in it redacted, and every query string."""
    return QUERY.sub("?<redacted>", URL.sub(lambda match: redact(match.group(0)), text))


def redacted_cause(err: BaseException) -> RedactedCause:
    """A cause to raise from in place of err, whose text may quote a URL with credentials."""
    return RedactedCause(f"{type(err).__name__}: {redact_text(str(err))}")


class RedactQueries(logging.Filter):
    """urllib3 logs every request line at DEBUG, signed-URL query string included: cut it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = QUERY.sub("?<redacted>", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactQueries())
