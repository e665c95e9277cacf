"""`make wheelhouse`: wheels for requirements.lock, for an offline image build.

    python -m nim_drum.devtools.wheelhouse [--python 3.11 ...] [--glibc 35] [--arch x86_64] [DEST]

For each Python version, the lock's markers are evaluated for that version on Linux (pip download
evaluates them for the Python that runs it, whatever --python-version says), and pip downloads the
binary wheels for it. Packages that PyPI has as source only (SOURCE_ONLY) are built here into
pure-Python wheels. The Dockerfile installs from the folder, offline, when it holds wheels.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

from nim_drum.devtools.help_format import DefaultsHelpFormatter

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
DEFAULT_DEST = REPO / "wheelhouse"
# DRUM's dependency filechunkio is a source package only (no wheel on PyPI).
SOURCE_ONLY = {"filechunkio"}
OLDEST_MANYLINUX_GLIBC = 17  # manylinux2014


def locked_requirements(lock: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in lock.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def marker_environment(python: str, arch: str) -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.0", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "sys_platform": "linux", "os_name": "posix",
            "platform_system": "Linux", "platform_machine": arch}


def pins_for(requirements: list[Requirement], python: str, arch: str) -> list[str]:
    """`name==version` lines of the requirements whose markers hold for `python` on Linux."""
    environment = marker_environment(python, arch)
    return [f"{r.name}{r.specifier}" for r in requirements if r.marker is None or r.marker.evaluate(environment)]


def platform_args(glibc: int, arch: str) -> list[str]:
    # pip does not widen a manylinux_2_X platform to older ones: name each.
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, OLDEST_MANYLINUX_GLIBC - 1, -1)]
    return [arg for tag in [*tags, f"manylinux2014_{arch}"] for arg in ("--platform", tag)]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def fill(dest: Path, pythons: list[str], glibc: int, arch: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    requirements = locked_requirements(LOCK)
    source_only = set()
    for python in pythons:
        pins = pins_for(requirements, python, arch)
        source_only |= {p for p in pins if p.split("==")[0].lower() in SOURCE_ONLY}
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as binary:
            binary.write("\n".join(p for p in pins if p.split("==")[0].lower() not in SOURCE_ONLY) + "\n")
            binary.flush()
            pip("download", "--dest", str(dest), "--no-deps", "--only-binary=:all:", "--implementation", "cp",
                "--python-version", python, *platform_args(glibc, arch), "-r", binary.name)
    if source_only:
        pip("wheel", "--no-deps", "--wheel-dir", str(dest), *sorted(source_only))
    print(f"{dest}: {len(list(dest.glob('*.whl')))} wheels for Python {', '.join(pythons)} "
          f"(manylinux glibc <= 2.{glibc}, {arch})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m nim_drum.devtools.wheelhouse", description=__doc__.splitlines()[0],
        epilog="Reads requirements.lock; downloads from the package index (builds the source-only ones) and "
               "writes the wheels into DEST.", formatter_class=DefaultsHelpFormatter)
    parser.add_argument("dest", nargs="?", type=Path, default=DEFAULT_DEST, help="where the wheels go")
    parser.add_argument("--python", action="append", help="the base image's Python (repeat for several); default 3.11")
    parser.add_argument("--glibc", type=int, default=35, help="newest manylinux glibc minor the base has (2.35: 35)")
    parser.add_argument("--arch", default="x86_64", help="the base image's machine")
    args = parser.parse_args(argv)
    fill(args.dest, args.python or ["3.11"], args.glibc, args.arch)


if __name__ == "__main__":
    main(sys.argv[1:])
