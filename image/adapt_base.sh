#!/bin/sh
# Build step (as root): add what DRUM 1.18.1's NIM predictor needs and a base image lacks
# (docs/image.md, "What DRUM's NIM predictor needs from a base image"):
#   - on a NIM 2.x base (nim-serve, neither launch script), /opt/nim/start_server.sh;
#   - without /opt/nvidia/nvidia_entrypoint.sh, a pass-through (DRUM launches NIM through it).
# The build log says what was added.
set -eu

: "${NIM_DRUM_HOME:?the Dockerfile sets NIM_DRUM_HOME, where the scripts of the image are}"
scripts="$NIM_DRUM_HOME/image"

log() {
    printf '[adapt_base] %s\n' "$*"
}

if [ ! -e /opt/nim/start_server.sh ] && [ ! -e /opt/nim/start-server.sh ]; then
    if command -v nim-serve >/dev/null; then
        log "NIM 2.x base (nim-serve, no /opt/nim/start_server.sh): adding the image's launch script"
        mkdir -p /opt/nim
        cp "$scripts/nim2_start_server.sh" /opt/nim/start_server.sh
    else
        log "The base has no /opt/nim/start_server.sh and no nim-serve: NIM mode is unavailable; the image serves in local or sidecar mode only"
    fi
fi
if [ ! -e /opt/nvidia/nvidia_entrypoint.sh ]; then
    log "The base has no /opt/nvidia/nvidia_entrypoint.sh: adding a pass-through"
    mkdir -p /opt/nvidia
    cp "$scripts/nvidia_entrypoint.sh" /opt/nvidia/
fi
