#!/bin/sh
# nim-drum: a pass-through the image provides where the base has no /opt/nvidia/nvidia_entrypoint.sh.
# DRUM 1.18.1's NIM predictor launches NIM as `/opt/nvidia/nvidia_entrypoint.sh <launch script>`;
# without this file the launch fails with no log line at all (docs/image.md).
printf '[nim-drum] /opt/nvidia/nvidia_entrypoint.sh is the image'"'"'s pass-through (the base image has none): running %s\n' "$*"
exec "$@"
