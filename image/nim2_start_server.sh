#!/bin/sh
# nim-drum: the launch script the image provides on NIM 2.x bases, which have `nim-serve` but no
# /opt/nim/start_server.sh. DRUM 1.18.1's NIM predictor runs /opt/nim/start_server.sh with NIM 1.x
# variables (docs/image.md, "NIM 2.x and 3.0"). What this script passes on:
#   - NIM_SERVER_PORT, NIM_SERVED_MODEL_NAME, NIM_MODEL_PROFILE and NIM_MAX_MODEL_LEN keep their
#     names in 2.x: passed as they are;
#   - NIM_MODEL_NAME (a local model directory, DRUM's model-repo route) is NIM_MODEL_PATH in 2.x;
#   - NIM_LOG_LEVEL: 2.x takes Python's levels only, so 1.x's DEFAULT is dropped (NIM's own
#     default) and TRACE becomes DEBUG;
#   - NIM_PASSTHROUGH_ARGS outranks NIM_* variables in 2.x, so a --port or --served-model-name in it
#     would move NIM away from the port and name DRUM uses: refused, with what to set instead.
set -eu

log() {
    printf '[nim-drum] %s\n' "$*"
}

if [ -n "${NIM_MODEL_NAME:-}" ] && [ -d "$NIM_MODEL_NAME" ] && [ -z "${NIM_MODEL_PATH:-}" ]; then
    NIM_MODEL_PATH=$NIM_MODEL_NAME
    export NIM_MODEL_PATH
fi

case "${NIM_LOG_LEVEL:-}" in
    DEFAULT | default) unset NIM_LOG_LEVEL ;;
    TRACE | trace) NIM_LOG_LEVEL=DEBUG && export NIM_LOG_LEVEL ;;
esac

for option in --port --served-model-name; do
    case " ${NIM_PASSTHROUGH_ARGS:-} " in
        *" $option "* | *" $option="*)
            log "ERROR: NIM_PASSTHROUGH_ARGS sets $option, which outranks the NIM_SERVER_PORT and NIM_SERVED_MODEL_NAME that DRUM gives NIM, so DRUM could not reach the model."
            log "Remove $option from NIM_PASSTHROUGH_ARGS; set the DR_NIM_SERVER_PORT or served_model_name runtime parameter instead."
            exit 2
            ;;
    esac
done

log "NIM 2.x base: nim-serve on port ${NIM_SERVER_PORT:-8000} as ${NIM_SERVED_MODEL_NAME:-(NIM default name)}, model ${NIM_MODEL_PATH:-(the model NIM chooses itself)}, log level ${NIM_LOG_LEVEL:-(NIM default)}"
exec nim-serve "$@"
