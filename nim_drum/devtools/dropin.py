"""`make dropin`: the environment's Docker context as a reproducible tarball, and the commands that
build and save the image that goes with it (a DataRobot environment version takes both files).

    python -m nim_drum.devtools.dropin [OUTPUT_DIR]      (default: output/dropin)

The tarball holds exactly the files .dockerignore lets into a `docker build` context, less the
optional wheelhouse/ of an offline build (`make wheelhouse`), which is never uploaded. Entries are
sorted, with fixed owners, modes and mtimes (SOURCE_DATE_EPOCH, or 2024-01-01) and a gzip header
with no name or time, so the same sources give the same bytes on any machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shlex
import sys
import tarfile
from pathlib import Path

from nim_drum.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO / "output" / "dropin"
CONTEXT_TARBALL = "nim-drum-context.tar.gz"
IMAGE_TARBALL = "nim-drum-image.tar.gz"
IMAGE_NAME = "datarobot-nim-drum"
REQUIRED_FILES = ("Dockerfile", "start_server.sh", "custom.py", "model-metadata.yaml",
                  "requirements.txt", "requirements.lock", "env_info.json", "image/install_drum.sh")
WHEELHOUSE = "wheelhouse"  # the Dockerfile's optional offline wheels; in the build context only
DEFAULT_EPOCH = 1704067200  # 2024-01-01T00:00:00Z


def context_files(source: Path) -> list[str]:
    """Relative paths of the files a `docker build` context of `source` holds, sorted."""
    patterns = read_dockerignore(source)
    found = []
    for directory, subdirs, files in os.walk(source):
        relative_dir = Path(directory).relative_to(source).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        subdirs[:] = [d for d in subdirs if not _skippable(prefix + d, patterns)]
        found += [prefix + f for f in files if not is_excluded(prefix + f, patterns)]
    missing = sorted(set(REQUIRED_FILES) - set(found))
    if missing:
        raise ConfigError(f"The Docker context in {source} lacks {missing}; check .dockerignore.")
    return sorted(found)


def read_dockerignore(source: Path) -> list[tuple[bool, re.Pattern]]:
    """(excludes, pattern) pairs in file order; the last pattern that matches a path decides."""
    path = source / ".dockerignore"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: it decides what goes into the image.")
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            include = line.startswith("!")
            patterns.append((not include, _pattern_regex(line.lstrip("!").strip("/"))))
    return patterns


def is_excluded(path: str, patterns: list[tuple[bool, re.Pattern]]) -> bool:
    # Like Docker: a pattern that matches a parent directory matches everything under it.
    parents = [path.rsplit("/", depth)[0] for depth in range(path.count("/"), -1, -1)]
    excluded = False
    for excludes, regex in patterns:
        if any(regex.fullmatch(p) for p in parents):
            excluded = excludes
    return excluded


def upload_files(source: Path) -> list[str]:
    """The build context's files that go into the uploaded context tarball: all but the wheelhouse."""
    return [f for f in context_files(source) if not f.startswith(WHEELHOUSE + "/")]


def write_context(source: Path, destination: Path) -> list[str]:
    """Write the context tarball of `source` to `destination`; return the files it holds."""
    files = upload_files(source)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            directories = _parent_directories(files)
            for name in sorted(directories + files):
                if name in directories:
                    tar.addfile(_entry(name, tarfile.DIRTYPE, 0o755, epoch))
                    continue
                data = (source / name).read_bytes()
                executable = os.access(source / name, os.X_OK)
                info = _entry(name, tarfile.REGTYPE, 0o755 if executable else 0o644, epoch)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(destination)
    return files


def build_commands(context: Path, image_tarball: Path, tag: str) -> list[str]:
    return [
        f"docker build -t {tag} - < {shlex.quote(str(context))}",
        f"docker save {tag} | gzip -9 > {shlex.quote(str(image_tarball))}",
    ]


def main(argv: list[str]) -> None:
    output = Path(argv[0]) if argv else DEFAULT_OUTPUT
    context, image_tarball = output / CONTEXT_TARBALL, output / IMAGE_TARBALL
    files = write_context(REPO, context)
    digest = hashlib.sha256(context.read_bytes()).hexdigest()
    tag = f"{IMAGE_NAME}:{digest[:12]}"
    print(f"Environment context: {_shown(context)} ({len(files)} files, sha256 {digest})")
    print("On a GPU host with Docker, after `docker login nvcr.io` (user $oauthtoken, password: "
          "your NGC API key), build the image from exactly this context and save it:")
    for command in build_commands(_shown(context), _shown(image_tarball), tag):
        print(f"  {command}")
    print("Another NIM: add --build-arg NIM_IMAGE=nvcr.io/nim/<org>/<model>:<tag> to docker build.")
    print(f"Upload {context.name} and {image_tarball.name} together as one environment version "
          "(README.md, \"Build the image and upload it\").")


def _pattern_regex(pattern: str) -> re.Pattern:
    regex = ""
    for token in re.split(r"(\*\*/|/\*\*|\*\*|\*|\?)", pattern):
        regex += {"**/": "(?:.*/)?", "/**": "(?:/.*)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
            token, re.escape(token))
    return re.compile(regex)


def _skippable(directory: str, patterns: list[tuple[bool, re.Pattern]]) -> bool:
    # An excluded directory (.git, .venv) is not walked unless a later `!` pattern may reach into it.
    if not is_excluded(directory, patterns):
        return False
    return not any(not excludes and regex.pattern.startswith((re.escape(directory + "/"), "(?:.*/)?"))
                   for excludes, regex in patterns)


def _parent_directories(files: list[str]) -> list[str]:
    parents = {str(Path(name).parents[depth]) for name in files for depth in range(name.count("/"))}
    return sorted(parents)


def _entry(name: str, kind: bytes, mode: int, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


if __name__ == "__main__":
    main(sys.argv[1:])
