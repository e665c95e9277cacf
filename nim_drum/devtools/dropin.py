"""`make dropin`: the environment's Docker context as a reproducible tarball, and the commands that
build and save the image that goes with it (a DataRobot environment version takes both files).

    python -m nim_drum.devtools.dropin [OUTPUT_DIR]      (default: output/dropin)

Reads the checkout (.dockerignore decides what goes in); writes OUTPUT_DIR/nim-drum-context.tar.gz
and prints the docker commands that build and save nim-drum-image.tar.gz beside it, and the files a
custom model on this environment takes (`model_files`, which the deploy tool uploads).

The tarball holds exactly the files .dockerignore lets into a `docker build` context, less the
optional wheelhouse/ of an offline build (`make wheelhouse`), which is never uploaded. Entries are
sorted, with fixed owners, modes and mtimes (SOURCE_DATE_EPOCH, or 2024-01-01) and a gzip header
with no name or time, so the same sources give the same bytes on any machine.
"""

from __future__ import annotations

import argparse
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
REQUIRED_FILES = ("Dockerfile", "start_server.sh", "requirements.txt", "requirements.lock", "env_info.json",
                  "image/install_drum.sh")
MODEL_ENTRY_FILES = ("custom.py", "model-metadata.yaml")
PACKAGE = "nim_drum"
# Developer tools, not part of a model (nor of the image: .dockerignore leaves them out too).
PACKAGE_EXCLUDED = ("nim_drum/devtools",)
WHEELHOUSE = "wheelhouse"  # the Dockerfile's optional offline wheels; in the build context only
DEFAULT_EPOCH = 1704067200  # 2024-01-01T00:00:00Z


def model_files(source: Path = REPO) -> list[str]:
    """Exactly what a custom model needs, relative to `source`: custom.py, its metadata and the whole
    nim_drum package (every subpackage), less the developer tools and bytecode.

    DRUM puts the model's folder first on sys.path, so an uploaded nim_drum/ hides the image's copy:
    a partial one (only the top-level modules) breaks `from nim_drum.serving import ...`.
    """
    package = [
        path.relative_to(source).as_posix()
        for path in (source / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    files = [*MODEL_ENTRY_FILES, *(f for f in package if not f.startswith(tuple(e + "/" for e in PACKAGE_EXCLUDED)))]
    missing = [f for f in (*MODEL_ENTRY_FILES, f"{PACKAGE}/__init__.py") if not (source / f).is_file()]
    if missing:
        raise ConfigError(f"{source} lacks {missing}: a model needs custom.py, model-metadata.yaml and nim_drum/.")
    return sorted(files)


def context_files(source: Path) -> list[str]:
    """Relative paths of the files a `docker build` context of `source` holds, sorted."""
    patterns = read_dockerignore(source)
    found = []
    for directory, subdirs, files in os.walk(source):
        relative_dir = Path(directory).relative_to(source).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        subdirs[:] = [d for d in subdirs if not _skippable(prefix + d, patterns)]
        found += [prefix + f for f in files if not is_excluded(prefix + f, patterns)]
    missing = sorted(set(REQUIRED_FILES).union(model_files(source)) - set(found))
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


def default_nim_image(source: Path = REPO) -> str:
    found = re.search(r"^ARG NIM_IMAGE=(\S+)", (source / "Dockerfile").read_text(), re.M)
    if found is None:
        raise ConfigError(f"{source / 'Dockerfile'} has no `ARG NIM_IMAGE=<default>` line.")
    return found.group(1)


def nim_image_of(build_args: str, source: Path = REPO) -> str:
    """The NIM_IMAGE a build with these `docker build` options starts from."""
    words = shlex.split(build_args)
    values = [w.split("=", 1)[1] for w in words if w.startswith("NIM_IMAGE=")]
    values += [w.split("=", 1)[1] for w in words if w.startswith("--build-arg=NIM_IMAGE=")]
    return values[-1] if values else default_nim_image(source)


def image_tag(context_digest: str, nim_image: str) -> str:
    """A tag that identifies both the context and the base: the NIM's own tag, then a digest of the two."""
    both = hashlib.sha256(f"{context_digest}\n{nim_image}".encode()).hexdigest()[:12]
    nim_tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", nim_image.rsplit("/", 1)[-1].replace(":", "-"))
    return f"{IMAGE_NAME}:{nim_tag[:100]}-{both}"


def build_commands(context: Path, image_tarball: Path, tag: str) -> list[str]:
    return [
        f"docker build -t {tag} - < {shlex.quote(str(context))}",
        f"docker save {tag} | gzip -9 > {shlex.quote(str(image_tarball))}",
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nim_drum.devtools.dropin", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Reads: the checkout's files that .dockerignore lets through. Writes: OUTPUT_DIR/{CONTEXT_TARBALL}.",
    )
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT, metavar="OUTPUT_DIR",
                        help=f"where the context tarball goes (default: {_shown(DEFAULT_OUTPUT)})")
    parser.add_argument("--build-args", default="", metavar="OPTIONS",
                        help="the docker build options the image will get (make's BUILD_ARGS), for its "
                             "NIM_IMAGE: the tag names the base as well as the context (default: none, "
                             "the Dockerfile's NIM_IMAGE)")
    parser.add_argument("--print-tag", action="store_true", help="print only the image tag (make image-tarballs)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    output = args.output
    context, image_tarball = output / CONTEXT_TARBALL, output / IMAGE_TARBALL
    files = write_context(REPO, context)
    digest = hashlib.sha256(context.read_bytes()).hexdigest()
    nim_image = nim_image_of(args.build_args)
    tag = image_tag(digest, nim_image)
    if args.print_tag:
        print(tag)
        return
    print(f"Environment context: {_shown(context)} ({len(files)} files, sha256 {digest}); base {nim_image}")
    print("On a GPU host with Docker, after `docker login nvcr.io` (user $oauthtoken, password: "
          "your NGC API key), build the image from exactly this context and save it:")
    for command in build_commands(_shown(context), _shown(image_tarball), tag):
        print(f"  {command}")
    print("Another NIM: add --build-arg NIM_IMAGE=nvcr.io/nim/<org>/<model>:<tag> to docker build, and give "
          "the same option to this command (--build-args) for the tag that goes with it.")
    print(f"Upload {context.name} and {image_tarball.name} together as one environment version "
          "(README.md, \"Deploy on DataRobot\": python -m nim_drum.devtools.deploy environment).")
    print(f"A custom model on it takes {len(model_files(REPO))} files: custom.py, model-metadata.yaml and "
          f"{PACKAGE}/ less {', '.join(PACKAGE_EXCLUDED)} (python -m nim_drum.devtools.deploy model uploads them).")


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
