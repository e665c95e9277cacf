#!/bin/sh
# Build step (as root): DRUM's virtualenv at $VIRTUAL_ENV, installed by uv from requirements.lock.
#
# Python: the base image's own python3 when it is $MIN_PYTHON or newer (the lock resolves for 3.10
# up; NIM 1.x bases ship 3.10, vLLM-based 2.x bases 3.12), so NIM bases need no interpreter
# download. Only a base with no such python3 makes uv download CPython $PYTHON_VERSION, online.
# Offline: when the build context has a wheelhouse/ folder with wheels in it (`make wheelhouse`),
# uv installs from those wheels only: no package index, no interpreter download.
set -eu

: "${VIRTUAL_ENV:?the Dockerfile sets VIRTUAL_ENV, where the virtualenv of DRUM goes}"
: "${NIM_DRUM_HOME:?the Dockerfile sets NIM_DRUM_HOME, where the nim_drum package goes}"
: "${PYTHON_VERSION:?the Dockerfile sets PYTHON_VERSION, the CPython uv downloads for a base without one}"
: "${MIN_PYTHON:?the Dockerfile sets MIN_PYTHON, the oldest python3 the lock resolves for}"

build_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
lock="$build_dir/requirements.lock"

log() {
    printf '[install_drum] %s\n' "$*"
}

python_fits() {
    "$1" -c "import sys; sys.exit(sys.version_info[:2] < tuple(map(int, '$MIN_PYTHON'.split('.'))))" 2>/dev/null
}

if ls "$build_dir"/*.whl >/dev/null 2>&1; then
    offline=1
    # uv reads these: wheels from the build context only, never an index or a Python download.
    export UV_OFFLINE=1 UV_NO_INDEX=1 UV_FIND_LINKS="$build_dir" UV_PYTHON_DOWNLOADS=never
    log "Offline build: installing from the wheelhouse ($(find "$build_dir" -name '*.whl' | wc -l) wheels), no package index."
else
    offline=0
    log "Online build: installing from the package index (add a wheelhouse/ folder for an offline build: make wheelhouse)."
fi

base_python=$(command -v python3 || true)
if [ -n "$base_python" ] && python_fits "$base_python"; then
    python=$base_python
    # The base's own interpreter: uv must not swap in a managed one.
    export UV_PYTHON_DOWNLOADS=never
    log "DRUM's virtualenv uses the base image's $("$python" --version 2>&1) ($python)."
elif [ "$offline" = 1 ]; then
    log "ERROR: the base image has no python3 $MIN_PYTHON or newer (found: ${base_python:-none}), and an offline build cannot download one."
    log "Use a base image with python3 >= $MIN_PYTHON (NIM images have one), or build with network access (uv then downloads CPython $PYTHON_VERSION)."
    exit 1
else
    : "${UV_PYTHON_INSTALL_DIR:?the Dockerfile sets UV_PYTHON_INSTALL_DIR, where uv puts a downloaded CPython}"
    python=$PYTHON_VERSION
    log "The base image has no python3 $MIN_PYTHON or newer (found: ${base_python:-none}): uv downloads CPython $PYTHON_VERSION into $UV_PYTHON_INSTALL_DIR."
fi

uv venv --python "$python" "$VIRTUAL_ENV"
uv pip install --python "$VIRTUAL_ENV/bin/python" -r "$lock"

# The image's one copy of nim_drum (in $NIM_DRUM_HOME) is importable from DRUM's Python, after the
# code directory: a model that uploads only custom.py still runs, and an uploaded nim_drum/ wins.
site_packages=$("$VIRTUAL_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
printf '%s\n' "$NIM_DRUM_HOME" > "$site_packages/nim_drum.pth"
log "$("$VIRTUAL_ENV/bin/drum" --version 2>&1 | head -n 1) installed in $VIRTUAL_ENV; nim_drum from $NIM_DRUM_HOME."
