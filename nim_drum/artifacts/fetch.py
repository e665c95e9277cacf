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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nim_drum.artifacts.sources import (
    CHUNK_BYTES,
    DownloadOptions,
    TransientError,
    is_remote,
    local_path,
    parse_sha256,
    remote_for,
    source_identity,
    source_name,
)
from nim_drum.errors import ArtifactError, ConfigError
from nim_drum.rates import per_second, seconds_left
from nim_drum.redaction import redact

log = logging.getLogger(__name__)

# Attempts in a row that add no bytes; an attempt that makes progress starts the count again, so a
# long download survives many short network hiccups.
STALLED_ATTEMPTS = 6
BACKOFF_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str | None  # None for a directory


def fetch(uri: str, folder: Path, options: DownloadOptions, expected_sha256: str | None = None) -> Fetched:
    """The artifact as a local file or directory: local sources in place, remote ones downloaded."""
    expected = (expected_sha256 or "").strip().lower() or None
    if not is_remote(uri):
        return _local(uri, expected)
    remote = remote_for(uri, options)
    expected = expected or with_retries(remote.sidecar_sha256, remote.display, options, _unreachable(remote.display))
    target = folder / source_name(uri)
    part = folder / f"{target.name}.{hashlib.sha256(source_identity(uri).encode()).hexdigest()[:8]}.incomplete"
    folder.mkdir(parents=True, exist_ok=True)
    digest = with_retries(lambda: _download_once(remote, part, options), remote.display, options,
                          _stalled(remote.display, part), progress=lambda: _size_of(part))
    _verify(part, digest, expected, uri)
    os.replace(part, target)
    _meta_path(part).unlink(missing_ok=True)
    return Fetched(target, digest)


def remote_size(uri: str, options: DownloadOptions) -> int | None:
    """The artifact's size in bytes when the source tells it before the download (for pre-flight)."""
    if not is_remote(uri):
        path = local_path(uri)
        return path.stat().st_size if path.is_file() else None
    remote = remote_for(uri, options)
    return with_retries(remote.size, remote.display, options, _unreachable(remote.display))


def with_retries(call, display: str, options: DownloadOptions, give_up: Callable[[TransientError], str],
                 progress: Callable[[], int] = lambda: 0):
    """call(), retried with exponential backoff and jitter on transient errors.

    It gives up, with the message give_up(err), after STALLED_ATTEMPTS failures in a row that made
    no progress (progress() did not grow); a failure that made progress starts the count again.
    """
    stalled, delay = 0, options.backoff_first
    while True:
        before = progress()
        try:
            return call()
        except TransientError as err:
            moved = progress() > before
            stalled = 0 if moved else stalled + 1
            if stalled >= STALLED_ATTEMPTS:
                raise ArtifactError(give_up(err)) from err
            delay = options.backoff_first if moved else delay
            wait = delay * random.uniform(0.5, 1.0)
            log.warning("Artifacts: %s (%s); trying again in %.1f s", display, err, wait)
            time.sleep(wait)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)


def _unreachable(display: str) -> Callable[[TransientError], str]:
    return lambda err: (f"{display} could not be reached ({err}) after {STALLED_ATTEMPTS} attempts; check "
                        "that the store is reachable from this container.")


def _stalled(display: str, part: Path) -> Callable[[TransientError], str]:
    return lambda err: (
        f"Downloading {display} failed {STALLED_ATTEMPTS} times in a row without progress ({err}); "
        f"{_size_of(part)} bytes are kept in {part} and the next start resumes from there. Check that "
        "the store is reachable from this container."
    )


def _size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


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
    expected = expected or (parse_sha256(sidecar.read_text(), uri) if sidecar.is_file() else None)
    digest = _file_sha256(path)
    _verify(None, digest, expected, uri)
    return Fetched(path, digest)


def _file_sha256(path: Path, length: int | None = None) -> str:
    return _hash_prefix(path, path.stat().st_size if length is None else length).hexdigest()


def _hash_prefix(path: Path, length: int) -> hashlib._Hash:
    sha = hashlib.sha256()
    with open(path, "rb") as source:
        while length > 0:
            chunk = source.read(min(CHUNK_BYTES, length))
            if not chunk:
                break
            sha.update(chunk)
            length -= len(chunk)
    return sha


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


# --- One download attempt -------------------------------------------------------------------


def _download_once(remote, part: Path, options: DownloadOptions) -> str:
    offset = _size_of(part)
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
        rate = per_second(self.received, time.monotonic() - self.started)
        done = self.offset + self.received
        if not self.total:
            return f"{_size(done)} of {self.display} at {_size(rate)}/s"
        eta = seconds_left(self.total - done, rate)
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
