"""Unpack an artifact (a directory, .tar, .tar.gz/.tgz, .zip, or one plain file) into a folder.

Every member is checked before anything is written: absolute paths, `..`, links that point outside
the folder and device files are refused, so an archive cannot write outside the destination.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from nim_drum.errors import ArtifactError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
ZIP_SUFFIXES = (".zip",)


def archive_kind(path: Path) -> str:
    """'directory', 'tar', 'zip' or 'file' (a single file, such as a .gguf, placed as it is)."""
    name = path.name.lower()
    if path.is_dir():
        return "directory"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    return "file"


def unpacked_size(path: Path) -> int:
    """Bytes the artifact takes once unpacked, from the archive's listing (for the space check)."""
    kind = archive_kind(path)
    if kind == "tar":
        with _open_tar(path) as archive:
            return sum(member.size for member in _tar_members(archive, path) if member.isfile())
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    if kind == "directory":
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return path.stat().st_size


def unpack(path: Path, target: Path, move: bool = False) -> None:
    """Put the artifact's content into target, a new folder; move=True moves a plain file there."""
    target.mkdir(parents=True, exist_ok=False)
    kind = archive_kind(path)
    if kind == "tar":
        _extract_tar(path, target)
    elif kind == "zip":
        _extract_zip(path, target)
    elif kind == "directory":
        shutil.copytree(path, target, symlinks=True, dirs_exist_ok=True)
    elif move:
        os.replace(path, target / path.name)
    else:
        shutil.copyfile(path, target / path.name)


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path)
    except tarfile.TarError as err:
        raise ArtifactError(f"{path.name} is not a readable tar archive ({err}); re-create it with tar.") from err


def _tar_members(archive: tarfile.TarFile, path: Path) -> list[tarfile.TarInfo]:
    try:
        return archive.getmembers()
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ArtifactError(
            f"{path.name} is damaged or truncated ({type(err).__name__}); upload it again and compare "
            "its sha256."
        ) from err


def _extract_tar(path: Path, target: Path) -> None:
    with _open_tar(path) as archive:
        members = _tar_members(archive, path)
        for member in members:
            _check_tar_member(member, path.name)
        # The "data" filter refuses the same attacks again and drops setuid bits (defence in depth).
        archive.extractall(target, members=members, filter="data")


def _check_tar_member(member: tarfile.TarInfo, archive: str) -> None:
    inside = _inside_path(member.name, archive)
    if member.isdev() or member.isfifo():
        raise _refused(archive, member.name, "is a device or FIFO file")
    if member.issym():
        # A symlink's target is relative to the folder that holds the link.
        _inside_path(str(PurePosixPath(inside).parent / member.linkname), archive, link=member.name)
    if member.islnk():
        # A hardlink's target is relative to the archive's root.
        _inside_path(member.linkname, archive, link=member.name)


def _extract_zip(path: Path, target: Path) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ArtifactError(f"{path.name} is not a readable zip archive ({err}); re-create it.") from err
    with archive:
        for info in archive.infolist():
            _inside_path(info.filename, path.name)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                # zipfile would write the link as a plain file holding its target.
                raise _refused(path.name, info.filename, "is a symlink; use a .tar.gz for folders with links")
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                raise _refused(path.name, info.filename, "is a device or FIFO file")
        archive.extractall(target)


def _inside_path(name: str, archive: str, link: str | None = None) -> str:
    """name, normalised, when it stays inside the destination; otherwise an ArtifactError."""
    what = f"links to {name}" if link else "has an absolute path"
    member = link or name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise _refused(archive, member, what)
    parts: list[str] = []
    for part in PurePosixPath(name.replace("\\", "/")).parts:
        if part == "..":
            if not parts:
                raise _refused(archive, member, f"{'links' if link else 'points'} outside the destination ({name})")
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return os.path.join(*parts) if parts else "."


def _refused(archive: str, member: str, why: str) -> ArtifactError:
    return ArtifactError(
        f"Refusing archive {archive}: member {member!r} {why}. Nothing was extracted; re-create the "
        "archive from the folder itself (for example `tar -C DIR -czf model.tgz .`)."
    )
