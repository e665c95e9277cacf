# NIM for LLMs with DataRobot DRUM: a DataRobot custom-model drop-in environment.
#
# NIM_IMAGE is the NIM to serve: a NIM for LLMs 1.x image (DRUM's NIM predictor launches its
# /opt/nim/start_server.sh) or a 2.x image (`nim-serve`; the image adds the launch script DRUM
# needs). Switch with, for example,
#   docker build --build-arg NIM_IMAGE=nvcr.io/nim/meta/llama-3.1-70b-instruct:<tag> ...
# Offline: put wheels for requirements.lock in wheelhouse/ first (`make wheelhouse`).
ARG NIM_IMAGE=nvcr.io/nim/meta/llama-3.1-8b-instruct:1.12.0
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${NIM_IMAGE}

# DRUM gets its own virtualenv, made from the base image's own python3 when it is MIN_PYTHON or
# newer (NIM 1.x bases: 3.10; vLLM-based 2.x: 3.12), with no interpreter download, offline too.
# Only on a base without one does uv download CPython PYTHON_VERSION (online builds only).
ARG MIN_PYTHON=3.10
ARG PYTHON_VERSION=3.11
# NIM images run as uid 1000; DRUM and NIM run as that user here too.
ARG RUNTIME_UID=1000

USER 0
# VIRTUAL_ENV stays set: DRUM's NIM predictor removes "$VIRTUAL_ENV/bin:" from PATH before it
# launches NIM, so NIM never runs with DRUM's Python.
ENV VIRTUAL_ENV=/opt/drum \
    NIM_DRUM_HOME=/opt/nim-drum \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_NO_CACHE=1 \
    PYTHONUNBUFFERED=1 \
    CODE_DIR=/opt/code \
    ADDRESS=0.0.0.0:8080
ENV PATH=${VIRTUAL_ENV}/bin:${PATH} \
    NIM_CACHE_PATH=${CODE_DIR}/.nim-cache

COPY --from=uv /uv /usr/local/bin/uv
# wheelhous[e] matches the optional wheelhouse/ folder and copies its wheels beside the lock; with
# none there, only the lock and the script are copied.
COPY requirements.lock image/install_drum.sh wheelhous[e] /tmp/drum-build/
RUN MIN_PYTHON=${MIN_PYTHON} PYTHON_VERSION=${PYTHON_VERSION} sh /tmp/drum-build/install_drum.sh && rm -rf /tmp/drum-build

# What DRUM's NIM predictor needs and a base may lack: the launch script on NIM 2.x bases, and
# NVIDIA's entrypoint (image/adapt_base.sh, docs/image.md).
COPY image/adapt_base.sh image/nim2_start_server.sh image/nvidia_entrypoint.sh ${NIM_DRUM_HOME}/image/
RUN sh "${NIM_DRUM_HOME}/image/adapt_base.sh"

# The one copy of the package, where DRUM's Python finds it (a .pth file made by install_drum.sh):
# a model that uploads only custom.py (and its metadata) still imports it, and a nim_drum/ uploaded
# with the model comes first (DRUM puts custom.py's folder first on sys.path). custom.py logs
# which copy it imported.
COPY nim_drum ${NIM_DRUM_HOME}/nim_drum

WORKDIR ${CODE_DIR}
# Modes come from the context (start_server.sh is executable there); no --chmod, which Docker's
# legacy builder refuses.
COPY --chown=${RUNTIME_UID}:0 start_server.sh custom.py model-metadata.yaml ./
# NIM writes downloaded models to NIM_CACHE_PATH ("Unable to write to NIM_CACHE_PATH" otherwise);
# group 0 may write both, for a random uid in group 0 (OpenShift).
RUN mkdir -p "${NIM_CACHE_PATH}" \
    && chown "${RUNTIME_UID}:0" "${CODE_DIR}" "${NIM_CACHE_PATH}" \
    && chmod 0775 "${CODE_DIR}" "${NIM_CACHE_PATH}"

USER ${RUNTIME_UID}
EXPOSE 8080
ENTRYPOINT ["/opt/code/start_server.sh"]
