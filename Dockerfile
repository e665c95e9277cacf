# NIM for LLMs with DataRobot DRUM: a DataRobot custom-model drop-in environment.
#
# NIM_IMAGE is the NIM to serve. Any NIM for LLMs 1.x image can be used: DRUM's NIM predictor
# launches its /opt/nim/start_server.sh. Switch with, for example,
#   docker build --build-arg NIM_IMAGE=nvcr.io/nim/meta/llama-3.1-70b-instruct:<tag> ...
ARG NIM_IMAGE=nvcr.io/nim/meta/llama-3.1-8b-instruct:1.12.0
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${NIM_IMAGE}

# DRUM and our package need Python 3.11 (pandas 3); NIM images ship their own Python for NIM.
# uv installs a standalone CPython, so DRUM's virtualenv does not depend on the NIM base OS.
ARG PYTHON_VERSION=3.11
# NIM images run as uid 1000; DRUM and NIM run as that user here too.
ARG RUNTIME_UID=1000

USER 0
# VIRTUAL_ENV stays set: DRUM's NIM predictor removes "$VIRTUAL_ENV/bin:" from PATH before it
# launches NIM, so NIM never runs with DRUM's Python.
ENV VIRTUAL_ENV=/opt/drum \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_NO_CACHE=1 \
    PYTHONUNBUFFERED=1 \
    CODE_DIR=/opt/code \
    ADDRESS=0.0.0.0:8080
ENV PATH=${VIRTUAL_ENV}/bin:${PATH} \
    NIM_CACHE_PATH=${CODE_DIR}/.nim-cache

COPY --from=uv /uv /usr/local/bin/uv
COPY requirements.txt /tmp/requirements.txt
RUN uv venv --seed --python "${PYTHON_VERSION}" "${VIRTUAL_ENV}" \
    && uv pip install --python "${VIRTUAL_ENV}/bin/python" -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The package also goes into DRUM's site-packages: a model that uploads only custom.py (and its
# metadata) still imports it. A nim_drum/ uploaded with the model comes first on sys.path.
COPY nim_drum ${VIRTUAL_ENV}/lib/python${PYTHON_VERSION}/site-packages/nim_drum

WORKDIR ${CODE_DIR}
COPY --chown=${RUNTIME_UID}:0 start_server.sh custom.py model-metadata.yaml ./
COPY --chown=${RUNTIME_UID}:0 nim_drum ./nim_drum
# NIM writes downloaded models to NIM_CACHE_PATH ("Unable to write to NIM_CACHE_PATH" otherwise).
RUN mkdir -p "${NIM_CACHE_PATH}" \
    && chown -R "${RUNTIME_UID}:0" "${CODE_DIR}" \
    && chmod -R g=u "${CODE_DIR}" \
    && chmod 0755 "${CODE_DIR}/start_server.sh"

USER ${RUNTIME_UID}
EXPOSE 8080
ENTRYPOINT ["/opt/code/start_server.sh"]
