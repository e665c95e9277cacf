#!/bin/sh
# Build step (as root): DRUM's virtualenv at $VIRTUAL_ENV, installed by uv from requirements.lock.
#
# Python: the base image's python3 when it is 3.11 or newer (what the lock allows); otherwise uv
# downloads CPython $PYTHON_VERSION, which needs the network.
# Offline: when the build context has a wheelhouse/ folder with wheels in it (`make wheelhouse`),
# uv installs from those wheels only: no package index, no interpreter download.
set -eu

build_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
lock="$build_dir/requirements.lock"

log() {
    printf '[install_drum] %s\n' "$*"
}

python_fits() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
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
    log "DRUM's virtualenv uses the base image's $("$python" --version 2>&1) ($python)."
elif [ "$offline" = 1 ]; then
    log "ERROR: the base image has no python3 3.11 or newer (found: ${base_python:-none}), and an offline build cannot download one."
    log "Build with network access (uv then downloads CPython $PYTHON_VERSION), or use a base image with python3 >= 3.11."
    exit 1
else
    python=$PYTHON_VERSION
    log "The base image has no python3 3.11 or newer (found: ${base_python:-none}): uv installs CPython $PYTHON_VERSION into $UV_PYTHON_INSTALL_DIR."
fi

uv venv --python "$python" "$VIRTUAL_ENV"
uv pip install --python "$VIRTUAL_ENV/bin/python" -r "$lock"

# The image's copy of nim_drum (in $NIM_DRUM_HOME) is importable from DRUM's Python, after the code
# directory: a model that uploads only custom.py still runs, and an uploaded nim_drum/ wins.
site_packages=$("$VIRTUAL_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
printf '%s\n' "$NIM_DRUM_HOME" > "$site_packages/nim_drum.pth"
log "$("$VIRTUAL_ENV/bin/drum" --version 2>&1 | head -n 1) installed in $VIRTUAL_ENV; nim_drum from $NIM_DRUM_HOME."
