"""`make dropin`: the environment context tarball is byte-identical run after run, and holds only the image's files."""

import gzip
import os
import shutil
import subprocess
import tarfile

from nim_drum.devtools.dropin import CONTEXT_TARBALL, context_files, write_context

from helpers import REPO


def make_dropin(output_dir):
    result = subprocess.run(["make", "-s", "dropin", f"DROPIN_DIR={output_dir}"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_make_dropin_is_byte_identical_and_prints_the_docker_commands(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    output = make_dropin(first)
    make_dropin(second)
    assert (first / CONTEXT_TARBALL).read_bytes() == (second / CONTEXT_TARBALL).read_bytes()
    lines = [line.strip() for line in output.splitlines()]
    build = next(line for line in lines if line.startswith("docker build"))
    save = next(line for line in lines if line.startswith("docker save"))
    tag = build.split()[3]
    assert build == f"docker build -t {tag} - < {first / CONTEXT_TARBALL}"
    assert save.startswith(f"docker save {tag} | gzip -9 > {first}/")


def test_same_sources_with_other_mtimes_and_modes_give_the_same_bytes(tmp_path):
    files = context_files(REPO)
    copies = []
    for name, umask_mode in (("a", 0o644), ("b", 0o664)):
        source = tmp_path / name
        for relative in files:
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / relative, source / relative)
            if relative != "start_server.sh":
                os.chmod(source / relative, umask_mode)
            os.utime(source / relative, (1_000_000 * len(name + relative), 2_000_000_000 - len(relative)))
        (source / "tests").mkdir()
        (source / "tests" / "test_x.py").write_text("secret = 1\n")
        shutil.copy(REPO / ".dockerignore", source / ".dockerignore")
        write_context(source, tmp_path / f"{name}.tar.gz")
        copies.append((tmp_path / f"{name}.tar.gz").read_bytes())
    assert copies[0] == copies[1]


def test_the_tarball_holds_the_image_files_with_fixed_metadata(tmp_path):
    make_dropin(tmp_path)
    path = tmp_path / CONTEXT_TARBALL
    with open(path, "rb") as raw:
        header = raw.read(10)
    assert header[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {"Dockerfile", ".dockerignore", "start_server.sh", "custom.py", "model-metadata.yaml",
            "requirements.txt", "env_info.json", "nim_drum/__init__.py", "nim_drum/envdump.py"} <= set(names)
    assert not [n for n in names if n.split("/")[0] in ("tests", ".git", ".venv", "output", "examples", ".ci")
                or "__pycache__" in n or n.endswith(".pyc")]
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert len({m.mtime for m in members}) == 1
    modes = {m.name: m.mode for m in members}
    assert modes["start_server.sh"] == 0o755 and modes["custom.py"] == 0o644 and modes["nim_drum"] == 0o755
    with gzip.open(path) as unzipped:
        assert unzipped.read(1)  # a valid gzip stream


def image_tarballs_tag(output_dir, build_args: str) -> str:
    # CONTAINER_ENGINE=echo: make image-tarballs runs its whole recipe and echoes the build command.
    result = subprocess.run(["make", "-s", "image-tarballs", f"DROPIN_DIR={output_dir}", "CONTAINER_ENGINE=echo",
                             f"BUILD_ARGS={build_args}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    build = next(line for line in result.stdout.splitlines() if line.startswith("build "))
    return build.split(" -t ")[1].split()[0]


def test_the_image_tag_identifies_the_context_and_the_nim_image(tmp_path):
    default = image_tarballs_tag(tmp_path / "a", "")
    other = image_tarballs_tag(tmp_path / "b", "--build-arg NIM_IMAGE=nvcr.io/nim/meta/llama-3.3-70b-instruct:1.13.1")
    again = image_tarballs_tag(tmp_path / "c", "")
    assert default != other and default == again
    assert default.startswith("datarobot-nim-drum:llama-3.1-8b-instruct-1.12.0-")
    assert other.startswith("datarobot-nim-drum:llama-3.3-70b-instruct-1.13.1-")
    printed = make_dropin(tmp_path / "d")
    assert f"-t {default} " in printed  # make dropin prints the same tag for the same base


def test_env_info_is_not_downloadable_for_an_image_with_nvidia_licensed_nim():
    # DataRobot's own NIM environments say false: the image carries NVIDIA's NIM, under NVIDIA's licence.
    import json

    info = json.loads((REPO / "env_info.json").read_text())
    assert "FROM nvcr.io/nim/" in info["environmentVersionDescription"]
    assert info["isDownloadable"] is False and info["isPublic"] is False
