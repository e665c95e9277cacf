"""Fetch one artifact file from a local path, http(s):// or s3://: resumable, retried, verified.

Like huggingface_hub's file_download: bytes go to a `.incomplete` file next to the destination,
the size and sha256 are checked, then os.replace puts the file in place. The `.incomplete` name is
derived from the source, so a restarted process finds the partial file and resumes it with a Range
request. URLs are redacted before they reach a log line or an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3

from nim_drum.errors import ArtifactError, ConfigError
from nim_drum.serving.settings import Credential

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 30
READ_TIMEOUT_SECONDS = 120
# Attempts in a row that add no bytes; an attempt that makes progress starts the count again, so a
# long download survives many short network hiccups.
STALLED_ATTEMPTS = 6
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
PROGRESS_INTERVAL_SECONDS = 10.0
TRANSIENT_HTTP_STATUS = {408, 425, 429, 500, 502, 503, 504}
REMOTE_SCHEMES = ("http", "https", "s3")


@dataclass(frozen=True)
class DownloadOptions:
    verify_ssl: bool = True
    credential: Credential | None = field(default=None, repr=False)
    s3_endpoint_url: str | None = None
    progress_interval: float = PROGRESS_INTERVAL_SECONDS
    backoff_first: float = BACKOFF_FIRST_SECONDS


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str | None  # None for a directory


class TransientError(Exception):
    """A failure worth retrying (connection dropped, timeout, 429, 5xx)."""


class SourceChanged(Exception):
    """A resume was refused (412, 416): the source changed, or the partial file is too long."""


class RedactQueries(logging.Filter):
    """urllib3 logs every request line at DEBUG, signed-URL query string included: cut it."""

    QUERY = re.compile(r"\?[^\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self.QUERY.sub("?<redacted>", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactQueries())


def redact(uri: str) -> str:
    """The URI without user info, query string or fragment: signed URLs carry secrets there."""
    parts = urlsplit(uri)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return uri
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def source_name(uri: str) -> str:
    """The file name a URI or path ends with (an S3 key's last part, a URL path's last part)."""
    return Path(unquote(urlsplit(uri).path if is_remote(uri) else uri)).name or "artifact"


def is_remote(uri: str) -> bool:
    return urlsplit(uri).scheme in REMOTE_SCHEMES


def local_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise ConfigError(
            f"Artifact URI {redact(uri)} has an unsupported scheme '{parts.scheme}'; use a local "
            "path, file://, http://, https:// or s3://bucket/key."
        )
    return Path(uri)


def fetch(uri: str, folder: Path, options: DownloadOptions, expected_sha256: str | None = None) -> Fetched:
    """The artifact as a local file or directory: local sources in place, remote ones downloaded."""
    expected = (expected_sha256 or "").strip().lower() or None
    if not is_remote(uri):
        return _local(uri, expected)
    remote = remote_for(uri, options)
    expected = expected or with_retries(remote.sidecar_sha256, remote.display, options)
    target = folder / source_name(uri)
    part = folder / f"{target.name}.{hashlib.sha256(source_identity(uri).encode()).hexdigest()[:8]}.incomplete"
    folder.mkdir(parents=True, exist_ok=True)
    digest = _download_with_retries(remote, part, options)
    _verify(part, digest, expected, uri)
    os.replace(part, target)
    _meta_path(part).unlink(missing_ok=True)
    return Fetched(target, digest)


def source_identity(uri: str) -> str:
    """What names a source across restarts. Query strings are kept: they can select versions."""
    return uri.strip()


def remote_for(uri: str, options: DownloadOptions) -> "HttpRemote | S3Remote":
    return S3Remote(uri, options) if urlsplit(uri).scheme == "s3" else HttpRemote(uri, options)


def remote_size(uri: str, options: DownloadOptions) -> int | None:
    """The artifact's size in bytes when the source tells it before the download (for pre-flight)."""
    if not is_remote(uri):
        path = local_path(uri)
        return path.stat().st_size if path.is_file() else None
    remote = remote_for(uri, options)
    return with_retries(remote.size, remote.display, options)


def with_retries(call, display: str, options: DownloadOptions, attempts: int = STALLED_ATTEMPTS):
    """call(), retried with backoff on transient errors: for the small requests (HEAD, .sha256)."""
    delay = options.backoff_first
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except TransientError as err:
            if attempt == attempts:
                raise ArtifactError(
                    f"{display} could not be reached ({err}) after {attempts} attempts; check that the "
                    "store is reachable from this container."
                ) from None
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)


def _local(uri: str, expected: str | None) -> Fetched:
    path = local_path(uri)
    if not path.exists():
        raise ArtifactError(f"Artifact {path} does not exist; check model_artifact_uri.")
    if path.is_dir():
        if expected:
            raise ConfigError(
                f"model_artifact_sha256 is set but {path} is a directory; a checksum applies to a "
                "file (an archive): clear the parameter or archive the directory."
            )
        return Fetched(path, None)
    sidecar = path.with_name(path.name + ".sha256")
    expected = expected or (_parse_sha256(sidecar.read_text(), uri) if sidecar.is_file() else None)
    digest = _file_sha256(path)
    _verify(None, digest, expected, uri)
    return Fetched(path, digest)


def _file_sha256(path: Path, length: int | None = None) -> str:
    return _hash_prefix(path, path.stat().st_size if length is None else length).hexdigest()


def _hash_prefix(path: Path, length: int) -> "hashlib._Hash":
    sha = hashlib.sha256()
    with open(path, "rb") as source:
        while length > 0:
            chunk = source.read(min(CHUNK_BYTES, length))
            if not chunk:
                break
            sha.update(chunk)
            length -= len(chunk)
    return sha


def _parse_sha256(text: str, uri: str) -> str:
    # `sha256sum FILE > FILE.sha256` writes "<hex>  FILE".
    token = (text.split() or [""])[0].lower()
    if not re.fullmatch(r"[0-9a-f]{64}", token):
        raise ArtifactError(
            f"{redact(uri)}.sha256 does not start with a sha256 digest; write it with "
            "`sha256sum FILE > FILE.sha256`, or set model_artifact_sha256."
        )
    return token


def _verify(part: Path | None, digest: str, expected: str | None, uri: str) -> None:
    if expected is None:
        log.info("Artifacts: %s has sha256 %s (no expected digest given)", redact(uri), digest)
        return
    if digest != expected:
        if part is not None:
            part.unlink(missing_ok=True)
            _meta_path(part).unlink(missing_ok=True)
        raise ArtifactError(
            f"sha256 mismatch for {redact(uri)}: expected {expected}, got {digest}. Nothing was put "
            "in place and the download was deleted; check model_artifact_sha256 (or the .sha256 "
            "file) against `sha256sum` of the artifact you uploaded."
        )
    log.info("Artifacts: sha256 of %s verified", redact(uri))


# --- The resumable download loop ----------------------------------------------------------------


def _download_with_retries(remote, part: Path, options: DownloadOptions) -> str:
    stalled, delay = 0, options.backoff_first
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            return _download_once(remote, part, options)
        except TransientError as err:
            after = part.stat().st_size if part.exists() else 0
            stalled = 0 if after > before else stalled + 1
            delay = options.backoff_first if after > before else min(delay * 2, BACKOFF_MAX_SECONDS)
            if stalled >= STALLED_ATTEMPTS:
                raise ArtifactError(
                    f"Downloading {remote.display} failed {stalled} times in a row without progress "
                    f"({err}); {after} bytes are kept in {part} and the next start resumes from there. "
                    "Check that the store is reachable from this container."
                ) from None
            wait = delay * random.uniform(0.5, 1.0)
            log.warning("Artifacts: %s (%s); resuming at byte %d in %.1f s", remote.display, err, after, wait)
            time.sleep(wait)


def _download_once(remote, part: Path, options: DownloadOptions) -> str:
    offset = part.stat().st_size if part.exists() else 0
    validator = _read_meta(part).get("validator") if offset else None
    response = remote.open(offset, validator)
    if response.start != offset:  # the source changed, or ignores Range: start again
        log.info("Artifacts: %s cannot resume at byte %d; downloading from the start", remote.display, offset)
        offset = 0
    _write_meta(part, {"validator": response.validator, "size": response.total})
    sha = _hash_prefix(part, offset) if offset else hashlib.sha256()
    progress = Progress(remote.display, response.total, offset, options.progress_interval)
    with open(part, "r+b" if offset else "wb") as target:
        target.seek(offset)
        target.truncate()
        for chunk in response.chunks:
            target.write(chunk)
            sha.update(chunk)
            progress.add(len(chunk))
    size = part.stat().st_size
    if response.total is not None and size != response.total:
        raise TransientError(f"got {size} of {response.total} bytes")
    progress.done()
    return sha.hexdigest()


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_meta(part: Path) -> dict:
    try:
        return json.loads(_meta_path(part).read_text())
    except (OSError, ValueError):
        return {}


def _write_meta(part: Path, meta: dict) -> None:
    _meta_path(part).write_text(json.dumps(meta))


class Progress:
    """Logs bytes, rate and ETA at intervals, because a 16 GB artifact takes minutes."""

    def __init__(self, display: str, total: int | None, offset: int, interval: float):
        self.display, self.total, self.offset, self.interval = display, total, offset, interval
        self.received = 0
        self.started = self.last_log = time.monotonic()
        resumed = f", resuming at {_size(offset)}" if offset else ""
        log.info("Artifacts: downloading %s (%s%s)", display, _size(total) if total else "size unknown", resumed)

    def add(self, count: int) -> None:
        self.received += count
        if time.monotonic() - self.last_log >= self.interval:
            self.last_log = time.monotonic()
            log.info("Artifacts: %s", self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.received / elapsed
        done = self.offset + self.received
        if not self.total:
            return f"{_size(done)} of {self.display} at {_size(rate)}/s"
        eta = (self.total - done) / rate if rate else float("inf")
        return (f"{_size(done)} of {_size(self.total)} ({100 * done / self.total:.0f}%) of {self.display} "
                f"at {_size(rate)}/s, about {eta:.0f} s left")

    def done(self) -> None:
        log.info("Artifacts: downloaded %s", self.line().split(", about")[0])


def _size(count: float | None) -> str:
    count = count or 0
    for unit in ("B", "KB", "MB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.2f} GB"


# --- Sources --------------------------------------------------------------------------------------


@dataclass
class Opened:
    start: int  # the byte the chunks start at
    total: int | None
    validator: str | None  # ETag or Last-Modified, sent back as If-Range when resuming
    chunks: Iterator[bytes]


class HttpRemote:
    def __init__(self, uri: str, options: DownloadOptions):
        self.uri, self.display = uri, redact(uri)
        self.session = requests.Session()
        self.verify = options.verify_ssl
        credential = options.credential
        if credential and credential.kind == "basic":
            self.session.auth = (credential.get("user") or "", credential.get("password") or "")
        elif credential and credential.get("apiToken"):
            self.session.headers["Authorization"] = f"Bearer {credential.get('apiToken')}"
        elif credential:
            raise ConfigError(
                f"model_artifact_credential has type '{credential.kind}', which does not apply to "
                f"{self.display}; use an api_token or basic credential for http(s)."
            )

    def size(self) -> int | None:
        response = self._request("HEAD", self.uri)
        length = response.headers.get("Content-Length")
        return int(length) if response.status_code == 200 and length else None

    def sidecar_sha256(self) -> str | None:
        parts = urlsplit(self.uri)
        sidecar = urlunsplit(parts._replace(path=parts.path + ".sha256"))
        response = self._request("GET", sidecar)
        if response.status_code != 200:
            # A signed URL does not sign the sidecar: 403 counts as "no sidecar" like 404.
            log.info("Artifacts: no %s.sha256 (HTTP %d)", self.display, response.status_code)
            return None
        return _parse_sha256(response.text, self.uri)

    def open(self, offset: int, validator: str | None) -> Opened:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        response = self._request("GET", self.uri, headers=headers, stream=True)
        if response.status_code == 416 and offset:
            response.close()  # the partial file is longer than the source: start again
            return self.open(0, None)
        self._raise_for_status(response)
        start = _content_range_start(response) if response.status_code == 206 else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
        return Opened(start, total, validator, _http_chunks(response))

    def _request(self, method: str, url: str, **kwargs) -> requests.Response:
        try:
            # verify per request: a Session's verify=False loses to REQUESTS_CA_BUNDLE (requests#3829).
            return self.session.request(
                method, url, timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS), verify=self.verify, **kwargs
            )
        except requests.exceptions.SSLError:
            raise ArtifactError(
                f"TLS verification failed for {self.display}; install the store's CA certificate "
                "(REQUESTS_CA_BUNDLE) or, for a private store, set verifySSL to false."
            ) from None
        except (requests.ConnectionError, requests.Timeout) as err:
            raise TransientError(type(err).__name__) from None

    def _raise_for_status(self, response: requests.Response) -> None:
        status = response.status_code
        if status in (200, 206):
            return
        response.close()
        if status in TRANSIENT_HTTP_STATUS:
            raise TransientError(f"HTTP {status}")
        hint = {401: "set model_artifact_credential", 403: "check model_artifact_credential and "
                "that a signed URL has not expired", 404: "check model_artifact_uri"}.get(status, "check the store")
        raise ArtifactError(f"{self.display} answered HTTP {status}; {hint}.")


def _content_range_start(response: requests.Response) -> int:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else 0


def _http_chunks(response: requests.Response) -> Iterator[bytes]:
    # read1, not iter_content: iter_content fills whole chunks, so a dropped connection would lose
    # the bytes of the chunk in progress; read1 hands over every byte as it arrives.
    try:
        while chunk := response.raw.read1(CHUNK_BYTES):
            yield chunk
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as err:
        raise TransientError(type(err).__name__) from None
    finally:
        response.close()


class S3Remote:
    def __init__(self, uri: str, options: DownloadOptions):
        import boto3
        from botocore.config import Config

        parts = urlsplit(uri)
        self.uri, self.display = uri, redact(uri)
        self.bucket, self.key = parts.netloc, unquote(parts.path.lstrip("/"))
        if not self.bucket or not self.key:
            raise ConfigError(f"Artifact URI {self.display} must look like s3://bucket/key.")
        credential = options.credential
        keys = {}
        if credential and credential.kind == "s3":
            keys = {"aws_access_key_id": credential.get("awsAccessKeyId"),
                    "aws_secret_access_key": credential.get("awsSecretAccessKey"),
                    "aws_session_token": credential.get("awsSessionToken")}
        elif credential:
            raise ConfigError(
                f"model_artifact_credential has type '{credential.kind}', which does not apply to "
                f"{self.display}; use an s3 credential, or none for the instance role."
            )
        # botocore retries on its own too: keep it short, our loop resumes at the right byte.
        config = Config(retries={"max_attempts": 2, "mode": "standard"},
                        connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.client = boto3.client("s3", endpoint_url=options.s3_endpoint_url or None, verify=options.verify_ssl,
                                   region_name=region, config=config, **keys)

    def size(self) -> int | None:
        return self._call(self.client.head_object, Bucket=self.bucket, Key=self.key)["ContentLength"]

    def sidecar_sha256(self) -> str | None:
        try:
            body = self._call(self.client.get_object, Bucket=self.bucket, Key=self.key + ".sha256")["Body"]
        except ArtifactError:
            log.info("Artifacts: no %s.sha256", self.display)
            return None
        return _parse_sha256(body.read().decode(errors="replace"), self.uri)

    def open(self, offset: int, validator: str | None) -> Opened:
        kwargs = {"Bucket": self.bucket, "Key": self.key}
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
            if validator:
                kwargs["IfMatch"] = validator
        try:
            answer = self._call(self.client.get_object, **kwargs)
        except SourceChanged:
            return self.open(0, None)
        start = int(re.match(r"bytes (\d+)-", answer.get("ContentRange", "bytes 0-")).group(1))
        total = start + answer["ContentLength"]
        return Opened(start, total, answer.get("ETag"), self._chunks(answer["Body"]))

    def _chunks(self, body) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        except (BotoCoreError, OSError) as err:
            raise TransientError(type(err).__name__) from None
        finally:
            body.close()

    def _call(self, method, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return method(**kwargs)
        except NoCredentialsError:
            raise ArtifactError(
                f"No credentials for {self.display}; set model_artifact_credential (an s3 credential) "
                "or give the container an instance role."
            ) from None
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = err.response.get("Error", {}).get("Code", "")
            if status in TRANSIENT_HTTP_STATUS or code in ("SlowDown", "RequestTimeout"):
                raise TransientError(f"S3 {code or status}") from None
            if status in (412, 416) and "Range" in kwargs:
                raise SourceChanged(code) from None
            raise ArtifactError(
                f"{self.display} answered {code or 'an error'} (HTTP {status}); check the bucket, the "
                "key, model_artifact_credential and artifact_s3_endpoint_url."
            ) from None
        except BotoCoreError as err:
            raise TransientError(type(err).__name__) from None
