#!/bin/sh
# Stand-in for NVIDIA's /opt/nvidia/nvidia_entrypoint.sh (tests only): a banner, then the command.
echo "[stand-in NVIDIA entrypoint] NIM 1.x stand-in"
exec "$@"
