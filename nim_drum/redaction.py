"""Keeping secrets out of logs and error messages: URLs lose their user info and query string."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit


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


class RedactQueries(logging.Filter):
    """urllib3 logs every request line at DEBUG, signed-URL query string included: cut it."""

    QUERY = re.compile(r"\?[^\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self.QUERY.sub("?<redacted>", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactQueries())
