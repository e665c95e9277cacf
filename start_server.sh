#!/bin/sh
# The image's entry point: choose how DRUM runs, then exec DRUM so that it receives the container's
# signals itself. Arguments are passed on to `drum server`; DRUM reads CODE_DIR, ADDRESS and
# TARGET_TYPE from the environment.
#
#   NIM_SIDECAR=1              NIM runs in another container at OPENAI_HOST:OPENAI_PORT
#   NIM installed, GPUs found  DRUM's NIM predictor launches NIM in this container
#   otherwise                  DRUM's Python predictor: custom.py's engine (embedded or external)
#
# VIRTUAL_ENV (DRUM's virtualenv; the Dockerfile sets it, and DRUM's NIM predictor needs it) and
# DROPIN_NIM_DIR (default /opt/nim) can be pointed elsewhere, which the tests do.
set -eu

: "${VIRTUAL_ENV:?must name the virtualenv of DRUM (the Dockerfile sets /opt/drum)}"
nim_dir=${DROPIN_NIM_DIR:-/opt/nim}
drum_venv=$VIRTUAL_ENV
script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

log() {
    printf '[start_server] %s\n' "$*"
}

count_gpus() {
    # Prints the count; says on stderr why it is 0 when nvidia-smi is there but fails, so that a
    # driver fault does not read as "no GPU".
    command -v nvidia-smi >/dev/null 2>&1 || { echo 0; return 0; }
    if listing=$(nvidia-smi -L 2>&1); then
        printf '%s\n' "$listing" | grep -c '^GPU ' || true
    else
        status=$?
        log "nvidia-smi -L failed (exit $status): $listing" >&2
        log "Counting 0 GPUs. If this machine has GPUs, check the NVIDIA driver and the container runtime (--gpus / NVIDIA_VISIBLE_DEVICES)." >&2
        echo 0
    fi
}

nim_installed() {
    # The two launch scripts DRUM's NIM predictor knows (start-server.sh in older NIMs).
    [ -f "$nim_dir/start_server.sh" ] || [ -f "$nim_dir/start-server.sh" ]
}

path_without_drum() {
    # DRUM strips its virtualenv from PATH before it launches NIM; NIM's own tools need the same.
    printf '%s' "${PATH#"$drum_venv/bin:"}"
}

print_profiles() {
    command -v list-model-profiles >/dev/null 2>&1 || return 0
    log "NIM model profiles (set the NIM_MODEL_PROFILE runtime parameter to choose one):"
    PATH=$(path_without_drum) list-model-profiles \
        || log "list-model-profiles failed (exit $?); NIM reports the cause when it starts."
}

default_runtime_param() {
    # Export MLOPS_RUNTIME_PARAM_<name> only when DataRobot (or the user) has not set it.
    if ! printenv "MLOPS_RUNTIME_PARAM_$1" >/dev/null; then
        export "MLOPS_RUNTIME_PARAM_$1=$2"
    fi
}

drop_empty_runtime_param() {
    # DataRobot (and DRUM's values-file loader) passes a declared parameter with no value as a null
    # payload, which DRUM's NIM predictor would use as is ("http://None:9999"). Without it, DRUM
    # falls back to OPENAI_HOST / OPENAI_PORT.
    printenv "MLOPS_RUNTIME_PARAM_$1" >/dev/null || return 0
    if "$drum_venv/bin/python" -c 'import json, os, sys
sys.exit(json.loads(os.environ[sys.argv[1]]).get("payload") not in (None, ""))' "MLOPS_RUNTIME_PARAM_$1" 2>/dev/null; then
        unset "MLOPS_RUNTIME_PARAM_$1"
    fi
}

GPU_COUNT=$(count_gpus)
export GPU_COUNT
log "GPUs found: $GPU_COUNT"
print_profiles

# One DRUM worker process, with gevent so that it serves many requests at once. DRUM's gunicorn
# server defaults to one sync worker, which serves one request at a time; more worker processes
# would each launch their own NIM (DRUM's NIM predictor starts one per worker), so each would load
# the model onto the GPU again. One gevent worker sends concurrent requests to exactly one NIM,
# which batches them. DataRobot sets these from model-metadata.yaml; docker run does not.
default_runtime_param DRUM_GUNICORN_WORKER_CLASS '{"type": "string", "payload": "gevent"}'
default_runtime_param DRUM_WORKER_CONNECTIONS '{"type": "numeric", "payload": 64}'
# DRUM's NIM predictor gives its OpenAI client DRUM_OPENAI_CLIENT_TIMEOUT, 3600 s when unset: longer
# than the 600 s after which DRUM gives up on the request, so NIM would go on generating for nobody
# (docs/drum.md). The metadata's default keeps it under DRUM_CLIENT_REQUEST_TIMEOUT.
default_runtime_param DRUM_OPENAI_CLIENT_TIMEOUT '{"type": "numeric", "payload": 540}'
drop_empty_runtime_param DR_NIM_SERVER_HOST
drop_empty_runtime_param DR_NIM_SERVER_PORT

case "${NIM_SIDECAR:-0}" in
    1 | true | yes)
        : "${OPENAI_HOST:?NIM_SIDECAR=1 needs OPENAI_HOST, the host name of the NIM container}"
        : "${OPENAI_PORT:?NIM_SIDECAR=1 needs OPENAI_PORT, the port the NIM container serves on}"
        mode=sidecar
        set -- --gpu-predictor=nim --sidecar "$@"
        ;;
    *)
        if nim_installed && [ "$GPU_COUNT" -gt 0 ]; then
            mode=nim
            set -- --gpu-predictor=nim "$@"
        else
            mode=local
        fi
        ;;
esac

if [ "${ENABLE_CUSTOM_MODEL_RUNTIME_ENV_DUMP:-0}" = 1 ]; then
    log "Environment (secrets redacted):"
    PYTHONPATH="$script_dir" "$drum_venv/bin/python" -m nim_drum.envdump
fi

case "$mode" in
    sidecar) log "Mode: sidecar. DRUM serves the NIM at $OPENAI_HOST:$OPENAI_PORT." ;;
    nim) log "Mode: NIM. DRUM's NIM predictor launches $nim_dir on $GPU_COUNT GPU(s)." ;;
    local)
        if nim_installed; then reason="no GPU was found"; else reason="NIM is not installed in $nim_dir"; fi
        log "Mode: local, because $reason. DRUM's Python predictor serves custom.py with its own engine (the engine runtime parameter: embedded or external)."
        ;;
esac
exec drum server --logging-level=info "$@"
