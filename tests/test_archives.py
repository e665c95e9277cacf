"""Unpacking artifacts: every format, and archives built to escape the destination."""

import io
import os
import stat
import tarfile
import zipfile

import pytest

from nim_drum.artifacts.archives import unpack, unpacked_size
from nim_drum.errors import ArtifactError


def tar_with(path, *members, mode="w"):
    """A tar archive built member by member, so it can hold what tar on the command line would not."""
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name, data=b"weights"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.fixture
def store(tmp_path):
    """A folder shaped like a NIM cache: blobs, and snapshots that link to them (relative links)."""
    root = tmp_path / "store"
    (root / "blobs").mkdir(parents=True)
    (root / "snapshots" / "v1").mkdir(parents=True)
    (root / "blobs" / "abc").write_bytes(b"x" * 1000)
    (root / "snapshots" / "v1" / "model.safetensors").symlink_to("../../blobs/abc")
    return root


@pytest.mark.parametrize("name, mode", [("s.tar", "w"), ("s.tar.gz", "w:gz"), ("s.tgz", "w:gz")])
def test_tar_formats_unpack_with_their_inner_links(store, tmp_path, name, mode):
    archive = tmp_path / name
    with tarfile.open(archive, mode) as tar:
        tar.add(store, arcname=".")
    unpack(archive, tmp_path / "out")
    link = tmp_path / "out" / "snapshots" / "v1" / "model.safetensors"
    assert link.is_symlink() and link.read_bytes() == b"x" * 1000
    assert unpacked_size(archive) == 1000


def test_zip_directory_and_single_file_unpack(store, tmp_path):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("config.json", "{}")
        zipped.writestr("weights/part-1.bin", b"w" * 10)
    unpack(archive, tmp_path / "zip")
    assert (tmp_path / "zip" / "weights" / "part-1.bin").read_bytes() == b"w" * 10

    unpack(store, tmp_path / "dir")
    assert (tmp_path / "dir" / "snapshots" / "v1" / "model.safetensors").is_symlink()

    single = tmp_path / "tiny.gguf"
    single.write_bytes(b"GGUF")
    unpack(single, tmp_path / "single")
    assert (tmp_path / "single" / "tiny.gguf").read_bytes() == b"GGUF"


ATTACKS = {
    "traversal": [file_member("../escaped.txt")],
    "traversal inside a path": [file_member("models/../../escaped.txt")],
    "absolute path": [file_member("/tmp/escaped-absolute.txt")],
    "symlink out": [link_member("models/cache", "../../..")],
    "absolute symlink": [link_member("passwd", "/etc/passwd")],
    "hardlink out": [link_member("shadow", "../outside.txt", tarfile.LNKTYPE)],
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_tar_attacks_are_refused_and_nothing_is_written(tmp_path, attack):
    archive = tar_with(tmp_path / "evil.tar", file_member("first.txt"), *ATTACKS[attack])
    with pytest.raises(ArtifactError, match="Refusing archive evil.tar: member"):
        unpack(archive, tmp_path / "out" / "target")
    assert list((tmp_path / "out" / "target").iterdir()) == []  # not even first.txt
    assert not (tmp_path / "out" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_device_files_are_refused(tmp_path):
    device = tarfile.TarInfo("dev/sda")
    device.type, device.devmajor, device.devminor = tarfile.BLKTYPE, 8, 0
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    for member in (device, fifo):
        archive = tar_with(tmp_path / f"{member.name.replace('/', '_')}.tar", (member, None))
        with pytest.raises(ArtifactError, match="is a device or FIFO file"):
            unpack(archive, tmp_path / member.name.replace("/", "_"))


@pytest.mark.parametrize("name", ["../escaped.txt", "/abs.txt", "a/../../escaped.txt"])
def test_zip_traversal_is_refused(tmp_path, name):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(name, "boom")
    with pytest.raises(ArtifactError, match="Refusing archive evil.zip"):
        unpack(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_zip_symlinks_are_refused(tmp_path):
    archive = tmp_path / "links.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(info, "/etc/passwd")
    with pytest.raises(ArtifactError, match="is a symlink; use a .tar.gz"):
        unpack(archive, tmp_path / "out")


def test_a_truncated_archive_is_refused_before_anything_is_written(store, tmp_path):
    archive = tmp_path / "s.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(store, arcname=".")
        info, data = file_member("big.bin", os.urandom(200_000))
        tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(archive.read_bytes()[:-50_000])
    with pytest.raises(ArtifactError, match="damaged or truncated"):
        unpack(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
