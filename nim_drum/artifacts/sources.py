"""Where artifact bytes come from: a local path, http(s):// or s3://, opened at a byte offset.

A remote source answers three things: its size (for the free-space check), its `.sha256` sidecar,
and its bytes from an offset with a validator (ETag or Last-Modified) so that a resume never mixes
two versions of a file. Transient failures raise TransientError, which nim_drum.artifacts.fetch retries.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3

from nim_drum.config.runtime_params import Credential
from nim_drum.engine_answers import is_transient
from nim_drum.errors import ArtifactError, ConfigError
from nim_drum.redaction import redact, redacted_cause

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 30
READ_TIMEOUT_SECONDS = 120
BACKOFF_FIRST_SECONDS = 1.0
PROGRESS_INTERVAL_SECONDS = 10.0
REMOTE_SCHEMES = ("http", "https", "s3")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DownloadOptions:
    verify_ssl: bool = True
    credential: Credential | None = field(default=None, repr=False)
    s3_endpoint_url: str | None = None
    progress_interval: float = PROGRESS_INTERVAL_SECONDS
    backoff_first: float = BACKOFF_FIRST_SECONDS


class TransientError(Exception):
    """A failure worth retrying (connection dropped, timeout, 429, 5xx)."""


class SourceChanged(Exception):
    """A resume was refused (412, 416): the source changed, or the partial file is too long."""


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


def source_identity(uri: str) -> str:
    """What names a source across restarts. Query strings are kept: they can select versions."""
    return uri.strip()


def remote_for(uri: str, options: DownloadOptions) -> HttpRemote | S3Remote:
    return S3Remote(uri, options) if urlsplit(uri).scheme == "s3" else HttpRemote(uri, options)


def parse_sha256(text: str, uri: str) -> str:
    # `sha256sum FILE > FILE.sha256` writes "<hex>  FILE".
    token = (text.split() or [""])[0].lower()
    if not SHA256_HEX.fullmatch(token):
        raise ArtifactError(
            f"{redact(uri)}.sha256 does not start with a sha256 digest; write it with "
            "`sha256sum FILE > FILE.sha256`, or set model_artifact_sha256."
        )
    return token


def wrong_credential(credential: Credential, display: str, expected: str) -> ConfigError:
    return ConfigError(
        f"model_artifact_credential has type '{credential.kind}', which does not apply to {display}; "
        f"use {expected}."
    )


def resume_from(offset: int, validator: str | None, condition: str) -> dict[str, str]:
    """A ranged request's fields: bytes from offset, only while the source still has this validator."""
    if not offset:
        return {}
    return {"Range": f"bytes={offset}-", **({condition: validator} if validator else {})}


def range_start(content_range: str | None) -> int:
    """The first byte of a `Content-Range: bytes START-END/TOTAL` answer (HTTP and S3 alike); 0 if none."""
    match = re.match(r"bytes (\d+)-", content_range or "")
    return int(match.group(1)) if match else 0


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
            raise wrong_credential(credential, self.display, "an api_token or basic credential for http(s)")

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
        return parse_sha256(response.text, self.uri)

    def open(self, offset: int, validator: str | None) -> Opened:
        # If-Range: a source that changed sends the whole file (200) instead of the rest.
        headers = {"Accept-Encoding": "identity", **resume_from(offset, validator, "If-Range")}
        response = self._request("GET", self.uri, headers=headers, stream=True)
        if response.status_code == 416 and offset:
            response.close()  # the partial file is longer than the source: start again
            return self.open(0, None)
        self._raise_for_status(response)
        start = range_start(response.headers.get("Content-Range")) if response.status_code == 206 else 0
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
        except requests.exceptions.SSLError as err:
            raise ArtifactError(
                f"TLS verification failed for {self.display}; install the store's CA certificate "
                "(REQUESTS_CA_BUNDLE) or, for a private store, set verifySSL to false."
            ) from redacted_cause(err)
        except (requests.ConnectionError, requests.Timeout) as err:
            raise TransientError(type(err).__name__) from redacted_cause(err)

    def _raise_for_status(self, response: requests.Response) -> None:
        status = response.status_code
        if status in (200, 206):
            return
        response.close()
        if is_transient(status):
            raise TransientError(f"HTTP {status}")
        hint = {401: "set model_artifact_credential", 403: "check model_artifact_credential and "
                "that a signed URL has not expired", 404: "check model_artifact_uri"}.get(status, "check the store")
        raise ArtifactError(f"{self.display} answered HTTP {status}; {hint}.")


def _http_chunks(response: requests.Response) -> Iterator[bytes]:
    # read1, not iter_content: iter_content fills whole chunks, so a dropped connection would lose
    # the bytes of the chunk in progress; read1 hands over every byte as it arrives.
    try:
        while chunk := response.raw.read1(CHUNK_BYTES):
            yield chunk
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as err:
        raise TransientError(type(err).__name__) from redacted_cause(err)
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
            raise wrong_credential(credential, self.display, "an s3 credential, or none for the instance role")
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
        return parse_sha256(body.read().decode(errors="replace"), self.uri)

    def open(self, offset: int, validator: str | None) -> Opened:
        # IfMatch: S3 answers a changed object with 412, and the download starts again.
        kwargs = {"Bucket": self.bucket, "Key": self.key, **resume_from(offset, validator, "IfMatch")}
        try:
            answer = self._call(self.client.get_object, **kwargs)
        except SourceChanged:
            return self.open(0, None)
        start = range_start(answer.get("ContentRange"))
        total = start + answer["ContentLength"]
        return Opened(start, total, answer.get("ETag"), self._chunks(answer["Body"]))

    def _chunks(self, body) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        except (BotoCoreError, OSError) as err:
            raise TransientError(type(err).__name__) from redacted_cause(err)
        finally:
            body.close()

    def _call(self, method, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return method(**kwargs)
        except NoCredentialsError as err:
            raise ArtifactError(
                f"No credentials for {self.display}; set model_artifact_credential (an s3 credential) "
                "or give the container an instance role."
            ) from redacted_cause(err)
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = err.response.get("Error", {}).get("Code", "")
            if is_transient(status) or code in ("SlowDown", "RequestTimeout"):
                raise TransientError(f"S3 {code or status}") from redacted_cause(err)
            if status in (412, 416) and "Range" in kwargs:
                raise SourceChanged(code) from redacted_cause(err)
            raise ArtifactError(
                f"{self.display} answered {code or 'an error'} (HTTP {status}); check the bucket, the "
                "key, model_artifact_credential and artifact_s3_endpoint_url."
            ) from redacted_cause(err)
        except BotoCoreError as err:
            raise TransientError(type(err).__name__) from redacted_cause(err)
