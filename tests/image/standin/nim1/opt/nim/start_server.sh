#!/bin/sh
# Stand-in for NIM 1.x's /opt/nim/start_server.sh (tests only, NOT NIM): NIM 1.x's launch variables
# around a real engine. NIM_MODEL_NAME names a local model directory (the only model route here);
# NIM_SERVER_PORT and NIM_SERVED_MODEL_NAME as NIM 1.x reads them.
echo "[stand-in NIM 1.x] start_server.sh $*"
exec /opt/standin/serve-engine "${NIM_MODEL_NAME:-}" "${NIM_SERVER_PORT:-8000}" \
    "${NIM_SERVED_MODEL_NAME:-standin/smollm2-135m-instruct}"
