"""load_model's job before an engine starts: put the model (and LoRA) artifacts in place, once.

Routes (docs/nim.md, "Where NIM finds a model"):
- NGC: no model_artifact_uri. Nothing is fetched; NIM downloads the model with NGC_API_KEY.
- cache: a NIM cache made by `download-to-cache`, placed in $NIM_CACHE_PATH.
- model-repo: a model store made by `create-model-store`, placed in <code_dir>/model-repo, where
  DRUM's NIM predictor points NIM_MODEL_NAME (and where the local embedded engine finds a .gguf).
- LoRA adapters, optionally, go into the folder NIM_PEFT_SOURCE names.

An install is atomic and idempotent: the artifact is unpacked into a staging folder inside the
destination (so on the same filesystem, even when the destination is a mount point), moved into
place entry by entry, and a marker that records the source and digest is written last. The marker
is what makes a destination complete: with the same source a restart makes no request at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from nim_drum.artifacts.archives import archive_kind, unpack, unpacked_size
from nim_drum.artifacts.fetch import fetch, remote_size
from nim_drum.artifacts.sources import DownloadOptions, is_remote, source_identity
from nim_drum.config.layout import MODEL_REPO
from nim_drum.config.settings import Settings
from nim_drum.errors import ArtifactError
from nim_drum.redaction import redact

log = logging.getLogger(__name__)

MARKER = ".nim-drum-artifact.json"
LOCK_FILE = ".nim-drum-artifact.lock"
WORK_DIR = ".nim-drum-work"
LOCK_LOG_SECONDS = 30.0
GB = 1000**3


@dataclass(frozen=True)
class Artifact:
    uri: str
    destination: Path
    place: str  # how the user knows the destination: "NIM_CACHE_PATH", "model-repo", "NIM_PEFT_SOURCE"
    sha256: str | None = None
    size_bytes: int | None = None


def prepare_artifacts(
    settings: Settings, code_dir: str | os.PathLike, nim_cache_path: Path, peft_source: Path
) -> None:
    """Fetch what the runtime parameters name, and log which route is in effect."""
    options = DownloadOptions(
        verify_ssl=settings.verifyssl,
        credential=settings.model_artifact_credential,
        s3_endpoint_url=settings.artifact_s3_endpoint_url,
    )
    artifacts = (model_artifact(settings, Path(code_dir), nim_cache_path), lora_artifact(settings, peft_source))
    for artifact in artifacts:
        if artifact:
            install(artifact, options)


def model_artifact(settings: Settings, code_dir: Path, nim_cache_path: Path) -> Artifact | None:
    uri = settings.model_artifact_uri
    if not uri:
        _log_route_without_artifact(settings, code_dir)
        return None
    size = int(settings.model_artifact_size_gb * GB) if settings.model_artifact_size_gb else None
    if settings.model_artifact_route == "cache":
        destination = nim_cache_path
        log.info("Artifacts: offline cache route: %s into NIM_CACHE_PATH %s", redact(uri), destination)
        return Artifact(uri, destination, "NIM_CACHE_PATH", settings.model_artifact_sha256, size)
    destination = code_dir / MODEL_REPO
    log.info("Artifacts: local model directory route: %s into %s (NIM_MODEL_NAME)", redact(uri), destination)
    return Artifact(uri, destination, MODEL_REPO, settings.model_artifact_sha256, size)


def lora_artifact(settings: Settings, destination: Path) -> Artifact | None:
    uri = settings.lora_artifact_uri
    if not uri:
        return None
    log.info("Artifacts: LoRA adapters: %s into NIM_PEFT_SOURCE %s", redact(uri), destination)
    return Artifact(uri, destination, "NIM_PEFT_SOURCE")


def _log_route_without_artifact(settings: Settings, code_dir: Path) -> None:
    repo = code_dir / MODEL_REPO
    if repo.is_dir() and any(repo.iterdir()):
        log.info("Artifacts: local model directory route: using the files already in %s", repo)
    elif settings.ngc_api_key or os.environ.get("NGC_API_KEY"):
        log.info("Artifacts: NGC route: no model_artifact_uri; NIM downloads the model from NGC itself.")
    else:
        log.info(
            "Artifacts: no model_artifact_uri and no NGC_API_KEY: NIM needs one of them (the local "
            "embedded engine serves its default model)."
        )


# --- One install ----------------------------------------------------------------------------------


def install(artifact: Artifact, options: DownloadOptions) -> None:
    """Put the artifact into its destination unless the marker says it is already there."""
    destination = artifact.destination
    ensure_writable(destination, artifact.place)
    with worker_lock(destination):
        marker = read_marker(destination)
        if _is_installed(marker, artifact):
            log.info("Artifacts: %s is already in %s; nothing fetched.", redact(artifact.uri), destination)
            return
        ensure_free_space(destination, artifact.size_bytes, "the declared model_artifact_size_gb")
        _remove_entries(destination, marker.get("entries", []) if not marker.get("complete") else [])
        _fetch_and_place(artifact, marker, options)


def _fetch_and_place(artifact: Artifact, marker: dict, options: DownloadOptions) -> None:
    destination = artifact.destination
    work = destination / WORK_DIR
    staging = work / f"staging-{uuid.uuid4().hex[:8]}"
    placed = False
    try:
        fetched = _fetch(artifact, work / "downloads", options)
        downloaded = work in fetched.path.parents
        if not (downloaded and archive_kind(fetched.path) == "file"):
            ensure_free_space(destination, unpacked_size(fetched.path), f"unpacking {fetched.path.name}")
        unpack(fetched.path, staging, move=downloaded)
        _move_into_place(staging, artifact, marker, fetched.sha256)
        placed = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _tidy_work(work, keep_partial=not placed)


def _fetch(artifact: Artifact, downloads: Path, options: DownloadOptions):
    if is_remote(artifact.uri):
        size = remote_size(artifact.uri, options)
        partial = sum(p.stat().st_size for p in downloads.glob("*.incomplete")) if downloads.is_dir() else 0
        ensure_free_space(artifact.destination, (size or 0) - partial, f"downloading {redact(artifact.uri)}")
    return fetch(artifact.uri, downloads, options, artifact.sha256)


def _move_into_place(staging: Path, artifact: Artifact, marker: dict, digest: str | None) -> None:
    destination = artifact.destination
    new_entries = sorted(p.name for p in staging.iterdir())
    old_entries = marker.get("entries", [])
    # Recorded first: a crash from here on leaves a marker that is not complete, and the next start
    # removes these entries before it installs again.
    write_marker(destination, artifact, digest, sorted(set(old_entries) | set(new_entries)), complete=False)
    _remove_entries(destination, set(old_entries) | set(new_entries))
    for name in new_entries:
        os.replace(staging / name, destination / name)
    write_marker(destination, artifact, digest, new_entries, complete=True)
    log.info("Artifacts: %s is in place in %s (%d entries)", redact(artifact.uri), destination, len(new_entries))


def _remove_entries(destination: Path, names) -> None:
    for name in names:
        path = destination / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _tidy_work(work: Path, keep_partial: bool) -> None:
    """After a failure keep only partial downloads, which the next start resumes."""
    if not keep_partial:
        shutil.rmtree(work, ignore_errors=True)
        return
    downloads = work / "downloads"
    for path in downloads.iterdir() if downloads.is_dir() else ():
        if not path.name.endswith((".incomplete", ".incomplete.json")):
            path.unlink()
    for folder in (downloads, work):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


# --- The marker ---------------------------------------------------------------------------------


def read_marker(destination: Path) -> dict:
    try:
        return json.loads((destination / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def write_marker(destination: Path, artifact: Artifact, digest: str | None, entries, complete: bool) -> None:
    marker = {
        # A hash, not the URI: a signed URL's query string is a secret.
        "source": _source_hash(artifact.uri),
        "display": redact(artifact.uri),
        "sha256": digest,
        "entries": list(entries),
        "complete": complete,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    temporary = destination / f"{MARKER}.{uuid.uuid4().hex[:8]}.tmp"
    temporary.write_text(json.dumps(marker, indent=1))
    os.replace(temporary, destination / MARKER)


def _is_installed(marker: dict, artifact: Artifact) -> bool:
    return (
        marker.get("complete") is True
        and marker.get("source") == _source_hash(artifact.uri)
        and (not artifact.sha256 or marker.get("sha256") == artifact.sha256.strip().lower())
    )


def _source_hash(uri: str) -> str:
    return hashlib.sha256(source_identity(uri).encode()).hexdigest()


# --- Pre-flight checks and the lock --------------------------------------------------------------


def ensure_writable(destination: Path, place: str) -> None:
    """Fail early, naming the user and the path (NIM's "Unable to write to NIM_CACHE_PATH")."""
    try:
        destination.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=destination, prefix=".nim-drum-probe-"):
            pass
    except OSError as err:
        raise ArtifactError(
            f"Unable to write to {place} {destination} as user {_user()} (uid {os.getuid()}, gid "
            f"{os.getgid()}): {err.strerror or err}. Make it writable by this user (a volume mounted "
            f"read-write for uid {os.getuid()}), or point {place} at a writable folder."
        ) from err


def ensure_free_space(destination: Path, needed: int | None, reason: str) -> None:
    if not needed or needed <= 0:
        return
    free = free_bytes(destination)
    if free < needed:
        raise ArtifactError(
            f"Not enough free space in {destination}: {reason} needs {needed / GB:.2f} GB and "
            f"{free / GB:.2f} GB are free. Free some space, or mount a larger volume there."
        )


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # an arbitrary uid with no passwd entry (OpenShift-style containers)
        return str(os.getuid())


@contextmanager
def worker_lock(destination: Path):
    """One installer at a time per destination, across DRUM workers and across replicas that share the
    volume; the others wait, saying so, and then find the marker."""
    lock = FileLock(lock_path(destination))
    waited = 0.0
    while True:
        try:
            lock.acquire(timeout=LOCK_LOG_SECONDS)
            break
        except Timeout:
            waited += LOCK_LOG_SECONDS
            log.info("Artifacts: still waiting (%.0f s) for another worker that is filling %s", waited, destination)
    try:
        yield
    finally:
        _release(lock, destination)


def _release(lock: FileLock, destination: Path) -> None:
    # The install is done (or failed) either way: a lock that cannot be released cleanly (a network
    # volume remounted, a stale handle) must not turn it into a failure. Closing the file drops the lock.
    try:
        lock.release()
    except OSError as err:
        log.warning("Artifacts: could not release the lock on %s (%s); the install is unaffected.", destination, err)


def lock_path(destination: Path) -> Path:
    # In the destination itself, on the volume: replicas that share NIM_CACHE_PATH (each with its own
    # /tmp) take turns. Not in WORK_DIR, which is removed after an install, and never in the marker's
    # entries, so an install never removes it.
    return destination / LOCK_FILE
