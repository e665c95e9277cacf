#!/bin/sh
# nim-drum: the launch script the image provides on NIM 2.x bases, which have `nim-serve` but no
# /opt/nim/start_server.sh. DRUM 1.18.1's NIM predictor runs /opt/nim/start_server.sh with NIM 1.x
# variables. NIM 2.x reads NIM_SERVER_PORT, NIM_SERVED_MODEL_NAME, NIM_MODEL_PROFILE,
# NIM_MAX_MODEL_LEN and NIM_LOG_LEVEL under the same names, but names a local model with
# NIM_MODEL_PATH instead of NIM_MODEL_NAME (docs/image.md).
set -eu

if [ -n "${NIM_MODEL_NAME:-}" ] && [ -d "$NIM_MODEL_NAME" ] && [ -z "${NIM_MODEL_PATH:-}" ]; then
    NIM_MODEL_PATH=$NIM_MODEL_NAME
    export NIM_MODEL_PATH
fi
printf '[nim-drum] NIM 2.x base: nim-serve on port %s as %s, model %s\n' \
    "${NIM_SERVER_PORT:-8000}" "${NIM_SERVED_MODEL_NAME:-(NIM default name)}" \
    "${NIM_MODEL_PATH:-(the model NIM chooses itself)}"
exec nim-serve "$@"
