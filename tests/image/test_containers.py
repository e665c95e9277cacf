"""The image, built with podman on stand-in NIM bases and run for real (`make test-image`).

The bases are stand-ins for NIM's packaging around a real engine (tests/image/standins.py): they
are NOT NIM. What runs inside the containers is real: the project's Dockerfile built offline from
the wheelhouse, DRUM 1.18.1 and its NIM predictor, custom.py, llama-server with SmolLM2. Everything
is checked from the host with the real `openai` client and `requests`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import openai
import pytest
import requests

from nim_drum.devtools.dropin import CONTEXT_TARBALL, write_context
from nim_drum.devtools.local_drum import ping_answers

from helpers import EXTRA_COLUMNS, engine_root, free_port
from standins import (
    LAYOUTS,
    REPO,
    RUN_FLAGS,
    build_project_image,
    podman,
    rootfs_image,
    run_once,
    smollm2_gguf,
    standin_image,
    without_python,
)

pytestmark = pytest.mark.image

TARGET = "resultText"
CANARY_NGC_API_KEY = "nvapi-canary-image-4b9e1c"
PROMPTS = b"promptText\nWhat is the capital of France?\nSay hello.\nName a colour.\n"
LOGS = REPO / "output" / "image-test-logs"


def runtime_params(**params) -> dict[str, str]:
    """DataRobot's runtime parameters as the container sees them: MLOPS_RUNTIME_PARAM_<name> = JSON."""
    env = {}
    for name, value in params.items():
        kind = "credential" if isinstance(value, dict) else "numeric" if isinstance(value, int) else "string"
        env[f"MLOPS_RUNTIME_PARAM_{name}"] = json.dumps({"type": kind, "payload": value})
    return env


class Container:
    """One run of the image; its DRUM answers on 127.0.0.1:port (host networking)."""

    def __init__(self, image: str, name: str, env: dict[str, str], user: str | None = None):
        self.image, self.name = image, f"nim-drum-test-{name}-{uuid.uuid4().hex[:6]}"
        self.port, self.nim_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The canary NGC key, as DataRobot passes it (a credential) and as a plain variable.
        self.env = {"TARGET_TYPE": "textgeneration", "TARGET_NAME": TARGET, "ADDRESS": f"127.0.0.1:{self.port}",
                    "OPENAI_PORT": str(self.nim_port), "NGC_API_KEY": CANARY_NGC_API_KEY,
                    **runtime_params(NGC_API_KEY={"credentialType": "api_token", "apiToken": CANARY_NGC_API_KEY}),
                    **env}
        self.user = user

    def __enter__(self) -> Container:
        user = ["--user", self.user] if self.user else []
        env = [arg for name, value in self.env.items() for arg in ("--env", f"{name}={value}")]
        subprocess.run(["podman", "--runtime", "runc", "run", "--detach", "--name", self.name, *RUN_FLAGS,
                        *user, *env, self.image], check=True, capture_output=True, timeout=120)
        return self

    def __exit__(self, *exc) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / f"{self.name}.log").write_text(self.logs())
        podman("rm", "--force", "--time", "5", self.name, check=False)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        result = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def wait_ready(self, timeout: float = 300) -> Container:
        # DRUM's /ping/ waits up to 5 s for NIM's health route, so each probe gets 15 s.
        if ping_answers(self.url, self.running, timeout, ping_timeout=15, interval=1):
            return self
        if not self.running():
            raise AssertionError(f"{self.name} exited before /ping/ answered:\n{self.logs()[-6000:]}")
        raise AssertionError(f"{self.name}: /ping/ not 200 after {timeout} s:\n{self.logs()[-6000:]}")

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *command, check=False)

    def stop(self) -> float:
        """SIGTERM (podman stop, SIGKILL after 30 s); the seconds it took."""
        started = time.monotonic()
        podman("stop", "--time", "30", self.name, timeout=90)
        return time.monotonic() - started


def engines_on_port(port: int) -> list[str]:
    """Host processes (the container's are visible from the host) running llama-server on `port`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(w.endswith(b"llama-server") for w in words) and str(port).encode() in words:
            found.append(b" ".join(words).decode(errors="replace"))
    return found


def predict(container: Container) -> dict:
    response = requests.post(f"{container.url}/predictions/", data=PROMPTS,
                             headers={"Content-Type": "text/csv"}, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def assert_our_score_ran(body: dict) -> None:
    # The extra columns are our score's: DRUM's built-in NIM /predict/ has none of them.
    assert len(body["predictions"]) == 3
    assert "Paris" in body["predictions"][0]
    assert body["extraModelOutput"]["columns"] == EXTRA_COLUMNS, body["extraModelOutput"]["columns"]


def assert_chat_streams(container: Container) -> None:
    client = openai.OpenAI(base_url=f"{container.url}/v1", api_key="unused", max_retries=0, timeout=300)
    model = client.models.list().data[0].id
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count from 1 to 10."}], max_tokens=24, stream=True)
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([p for p in pieces if p]) > 1 and "".join(pieces).strip(), pieces


def assert_no_canary(container: Container) -> None:
    assert CANARY_NGC_API_KEY not in container.logs(), f"the NGC_API_KEY canary is in {container.name}'s log"


# --- builds ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session", params=sorted(LAYOUTS))
def layout(request):
    return LAYOUTS[request.param]


@pytest.fixture(scope="session")
def wheelhouse():
    wheels = sorted((REPO / "wheelhouse").glob("*.whl"))
    assert wheels, "no wheelhouse/: run `make wheelhouse WHEELHOUSE_PYTHON='3.11 3.13'` (make test-image does)"
    return wheels


@pytest.fixture(scope="session")
def standin(layout):
    return standin_image(layout)


@pytest.fixture(scope="session")
def image(layout, standin, wheelhouse):
    """The project's Dockerfile built on the layout's stand-in, offline: wheelhouse, dead proxy.
    Without the layer cache, so that every step really runs (as on a fresh CI machine)."""
    tag = f"localhost/nim-drum-test-{layout.name}:test"
    result, seconds = build_project_image(REPO, standin, tag, "--no-cache")
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"build-{layout.name}.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"build on the {layout.name} stand-in failed:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    return {"tag": tag, "log": result.stdout + result.stderr, "seconds": seconds}


@pytest.fixture(scope="session")
def host_engine(engine):
    """The real embedded engine on the host, for sidecar mode and engine=external."""
    return engine_root(engine)


def test_the_build_is_offline_and_uses_the_base_python(image, layout):
    log = image["log"]
    assert "[install_drum] Offline build: installing from the wheelhouse" in log
    assert f"DRUM's virtualenv uses the base image's Python {layout.python}" in log
    version = run_once(image["tag"], "/opt/drum/bin/python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    assert version.stdout.strip() == layout.python, version.stderr
    assert run_once(image["tag"], "/bin/sh", "-c", "test ! -e /opt/python").returncode == 0, "uv downloaded an interpreter"


def test_the_image_adds_what_the_nim2_layout_lacks(image, layout):
    lines = image["log"].splitlines()  # whole lines: the build log also echoes the RUN command
    adds_launcher = "NIM 2.x base (nim-serve, no /opt/nim/start_server.sh): adding the image's launch script" in lines
    adds_entrypoint = "The base has no /opt/nvidia/nvidia_entrypoint.sh: adding a pass-through" in lines
    assert (adds_launcher, adds_entrypoint) == ((False, False) if layout.name == "nim1" else (True, True))


# --- the modes ------------------------------------------------------------------------------------

def test_nim_mode_drums_nim_predictor_launches_the_standin(image, layout):
    """The production path: DRUM's NIM predictor launches the (stand-in) NIM and calls our score."""
    # llama-server answers /health, not NIM's /v1/health/ready (a stand-in difference).
    env = {**runtime_params(DR_NIM_HEALTH_ROUTE="/health"), "ENABLE_CUSTOM_MODEL_RUNTIME_ENV_DUMP": "1"}
    with Container(image["tag"], f"nim-{layout.name}", env) as container:
        container.wait_ready()
        log = container.logs()
        assert "[start_server] GPUs found: 1" in log and "Mode: NIM" in log
        assert "standin-llama.cpp-q4_1-tp1" in log  # list-model-profiles ran
        assert f"on 127.0.0.1:{container.nim_port} (uid 1000)" in log  # DRUM's port reached the engine
        if layout.name == "nim2":
            assert "[nim-drum] NIM 2.x base: nim-serve" in log
            assert "is the image's pass-through (the base image has none)" in log
        else:
            assert "[stand-in NVIDIA entrypoint]" in log
        assert_our_score_ran(predict(container))
        assert_chat_streams(container)
        models = requests.get(f"{container.url}/v1/models", timeout=30)
        assert models.status_code == 200 and models.json()["data"], models.text
        assert requests.get(f"{container.url}/ping/", timeout=10).status_code == 200
        assert engines_on_port(container.nim_port), "no stand-in engine runs on DRUM's NIM port"

        seconds = container.stop()
        assert seconds < 30, f"SIGTERM took {seconds:.1f} s: podman had to SIGKILL"
        assert not engines_on_port(container.nim_port), "the engine outlived its container"
        assert "NGC_API_KEY=<redacted>" in container.logs()  # the env dump ran, redacted
        assert_no_canary(container)


def test_artifact_route_as_an_openshift_user(image, layout, tmp_path):
    """--user 12345:0 (a random uid in group 0): model_artifact_uri over http fills model-repo,
    and the stand-in NIM serves that model from it."""
    from artifact_server import ArtifactServer

    shutil.copy(smollm2_gguf(), tmp_path / "artifact-smollm2.gguf")
    with ArtifactServer(tmp_path) as server:
        env = runtime_params(DR_NIM_HEALTH_ROUTE="/health", model_artifact_uri=f"{server.url}/artifact-smollm2.gguf")
        with Container(image["tag"], f"artifact-{layout.name}", env, user="12345:0") as container:
            container.wait_ready()
            log = container.logs()
            assert "local model directory route" in log
            assert "serving /opt/code/model-repo/artifact-smollm2.gguf" in log
            assert "(uid 12345)" in log
            assert_our_score_ran(predict(container))
            writable = container.exec("sh", "-c", 'touch "$CODE_DIR/.w" "$NIM_CACHE_PATH/.w" && id -u')
            assert writable.returncode == 0 and writable.stdout.strip() == "12345", writable.stderr
            assert container.stop() < 30
            assert not engines_on_port(container.nim_port)
            assert_no_canary(container)


def test_sidecar_mode_against_an_engine_on_the_host(image, layout, host_engine):
    host, port = host_engine.removeprefix("http://").split(":")
    # DRUM's sidecar mode proxies health to the engine; llama-server's route is /health.
    env = {**runtime_params(DR_NIM_HEALTH_ROUTE="/health"), "NIM_SIDECAR": "1", "OPENAI_HOST": host,
           "OPENAI_PORT": port}
    assert_serves_in_mode(Container(image["tag"], f"sidecar-{layout.name}", env), "Mode: sidecar")


def test_local_mode_with_an_external_engine(image, layout, host_engine):
    # No GPU (the stand-in's nvidia-smi, like NVIDIA's runtime, shows none for "void").
    env = {**runtime_params(engine="external", base_url=f"{host_engine}/v1"), "NVIDIA_VISIBLE_DEVICES": "void"}
    assert_serves_in_mode(Container(image["tag"], f"local-{layout.name}", env), "Mode: local, because no GPU was found")


def assert_serves_in_mode(container: Container, mode_line: str) -> None:
    """The container logs its mode, our score answers /predictions/, chat streams, SIGTERM stops it, no leak."""
    with container:
        container.wait_ready()
        assert mode_line in container.logs()
        assert_our_score_ran(predict(container))
        assert_chat_streams(container)
        assert container.stop() < 30
        assert_no_canary(container)


# --- builds that must fail ------------------------------------------------------------------------

def test_an_offline_build_without_a_fitting_python_fails_fast_and_says_what_to_do(wheelhouse):
    base = without_python(standin_image(LAYOUTS["nim1"]))
    result, _ = build_project_image(REPO, base, "localhost/nim-drum-test-nopython:test")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the base image has no python3 3.11 or newer (found: none), and an offline build cannot download one" in log
    assert "Build with network access" in log


def test_the_uploaded_context_has_no_wheelhouse_so_the_dead_proxy_stops_its_build(tmp_path):
    """The offline builds above prove something: the same build with no wheelhouse needs the index,
    which the dead proxy blocks. The context is `make dropin`'s tarball, unpacked."""
    tarball = tmp_path / CONTEXT_TARBALL
    files = write_context(REPO, tarball)
    assert not [f for f in files if f.startswith("wheelhouse")]
    context = tmp_path / "context"
    with tarfile.open(tarball) as archive:
        archive.extractall(context, filter="data")
    result, _ = build_project_image(context, rootfs_image("bookworm"), "localhost/nim-drum-test-online:test")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "[install_drum] Online build: installing from the package index" in log
    # uv reached for the index through the dead proxy and was refused
    assert "error sending request for url (https://pypi.org/simple/" in log and "tunnel error" in log, log[-3000:]
