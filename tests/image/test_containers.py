"""The image, built on stand-in NIM bases and run for real (`make test-image`): with Docker on the
NIM 1.x stand-in (through `make image-tarballs`, `docker save | gzip -9` and `docker load`), with
podman on the NIM 2.x one.

The bases are stand-ins for NIM's packaging around a real engine (tests/image/standins.py): they
are NOT NIM. What runs inside the containers is real: the project's Dockerfile built offline from
the wheelhouse, DRUM 1.18.1 and its NIM predictor, custom.py, llama-server with SmolLM2 behind
NIM's health routes. Everything is checked from the host with the real `openai` client and
`requests`. No test sets DR_NIM_HEALTH_ROUTE: DRUM probes NIM's /v1/health/ready, its default.
"""

from __future__ import annotations

import hashlib
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

from nim_drum.devtools.dropin import CONTEXT_TARBALL, image_tag, nim_image_of, write_context
from nim_drum.devtools.local_drum import ping_answers

from helpers import ADAPTER, EXTRA_COLUMNS, STYLE, NimFront, engine_root, free_port, trained_loras
from standins import (
    DOCKER,
    LAYOUTS,
    PODMAN,
    REPO,
    ContainerEngine,
    Dockerd,
    Layout,
    build_project_image,
    offline_build_args,
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

    def __init__(self, image: dict, name: str, env: dict[str, str], user: str | None = None):
        self.engine: ContainerEngine = image["engine"]
        self.image, self.name = image["tag"], f"nim-drum-test-{name}-{uuid.uuid4().hex[:6]}"
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
        self.engine("run", "--detach", "--name", self.name, *user, *env, self.image, timeout=120)
        return self

    def __exit__(self, *exc) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        (LOGS / f"{self.name}.log").write_text(self.logs())
        self.engine("rm", "--force", self.name, check=False)

    def logs(self) -> str:
        result = self.engine("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        result = self.engine("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def wait_ready(self, timeout: float = 300) -> Container:
        # DRUM's /ping/ waits up to 5 s for NIM's health route, so each probe gets 15 s.
        if ping_answers(self.url, self.running, timeout, ping_timeout=15, interval=1):
            return self
        if not self.running():
            raise AssertionError(f"{self.name} exited before /ping/ answered:\n{self.logs()[-6000:]}")
        raise AssertionError(f"{self.name}: /ping/ not 200 after {timeout} s:\n{self.logs()[-6000:]}")

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return self.engine("exec", self.name, *command, check=False)

    def stop(self) -> float:
        """SIGTERM (podman stop / docker stop, SIGKILL after 30 s); the seconds it took."""
        started = time.monotonic()
        self.engine("stop", "--time", "30", self.name, timeout=90)
        return time.monotonic() - started


def engines_on_port(port: int) -> list[str]:
    """Host processes (the container's are visible from the host) of the stand-in NIM on `port`: its
    health front (`--port PORT`) and llama-server (marked `--slot-save-path /tmp/standin-nim-port-PORT`)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        marked = str(port).encode() in words or f"/tmp/standin-nim-port-{port}".encode() in words
        if marked and any(w.endswith(b"llama-server") for w in words):
            found.append(b" ".join(words).decode(errors="replace"))
    return found


def status(url: str) -> int:
    try:
        return requests.get(url, timeout=10).status_code
    except requests.RequestException:
        return 0


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

@pytest.fixture(scope="session")
def dockerd():
    with Dockerd(LOGS / "dockerd.log") as engine:
        yield engine


@pytest.fixture(scope="session", params=sorted(LAYOUTS))
def layout(request):
    layout = LAYOUTS[request.param]
    if layout.engine is DOCKER:
        request.getfixturevalue("dockerd")
    return layout


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
    Without the layer cache, so that every step really runs (as on a fresh CI machine). With Docker,
    through `make image-tarballs`, and then loaded back from the tarball it wrote."""
    if layout.engine is DOCKER:
        return image_from_tarballs(layout, standin)
    tag = f"localhost/nim-drum-test-{layout.name}:test"
    result, seconds = build_project_image(layout.engine, REPO, standin, tag, "--no-cache")
    return built(layout, tag, result.returncode, result.stdout + result.stderr, seconds)


def built(layout: Layout, tag: str, returncode: int, log: str, seconds: float) -> dict:
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"build-{layout.name}.log").write_text(log)
    assert returncode == 0, f"build on the {layout.name} stand-in failed:\n{log[-8000:]}"
    return {"tag": tag, "log": log, "seconds": seconds, "engine": layout.engine}


DROPIN = REPO / "output" / "image-test-dropin"


def image_from_tarballs(layout: Layout, standin: str) -> dict:
    """`make image-tarballs` with Docker, as the README tells users: the context and `docker save |
    gzip -9`; the image is then removed and loaded back from the tarball, and that is what runs."""
    build_args = " ".join([*offline_build_args(DOCKER, standin), "--no-cache"])
    started = time.monotonic()
    result = subprocess.run(["make", "--no-print-directory", "image-tarballs", "CONTAINER_ENGINE=docker",
                             "IMAGE_BUILD_FLAGS=--network=host", f"BUILD_ARGS={build_args}", f"DROPIN_DIR={DROPIN}"],
                            cwd=REPO, capture_output=True, text=True, timeout=1800, env=DOCKER.environment())
    seconds = time.monotonic() - started
    tag = image_tag(hashlib.sha256((DROPIN / CONTEXT_TARBALL).read_bytes()).hexdigest(), nim_image_of(build_args))
    assert tag.startswith("datarobot-nim-drum:nim-drum-standin-nim1-test-"), tag  # the base's name is in it
    log = result.stdout + result.stderr
    built(layout, tag, result.returncode, log, seconds)
    tarball = DROPIN / "nim-drum-image.tar.gz"
    with open(tarball, "rb") as saved:
        assert saved.read(2) == b"\x1f\x8b", f"{tarball} is not gzip"
    DOCKER("rmi", "--force", tag)
    assert not DOCKER.image_exists(tag)
    loaded = DOCKER("load", "--input", str(tarball), timeout=900)
    assert f"Loaded image: {tag}" in loaded.stdout, loaded.stdout + loaded.stderr
    return {"tag": tag, "log": log, "seconds": seconds, "engine": DOCKER, "tarball": tarball}


@pytest.fixture(scope="session")
def host_engine(engine):
    """The real embedded engine on the host, for sidecar mode and engine=external."""
    return engine_root(engine)


def test_the_build_is_offline_and_uses_the_base_python(image, layout):
    log = image["log"]
    assert "[install_drum] Offline build: installing from the wheelhouse" in log
    assert f"DRUM's virtualenv uses the base image's Python {layout.python}" in log
    version = run_once(layout.engine, image["tag"], "/opt/drum/bin/python", "-c",
                       "import sys; print('%d.%d' % sys.version_info[:2])")
    assert version.stdout.strip() == layout.python, version.stderr
    no_download = run_once(layout.engine, image["tag"], "/bin/sh", "-c", "test ! -e /opt/python")
    assert no_download.returncode == 0, "uv downloaded an interpreter"


def test_the_image_adds_what_the_nim2_layout_lacks(image, layout):
    lines = image["log"].splitlines()  # whole lines: the build log also echoes the RUN command
    adds_launcher = "[adapt_base] NIM 2.x base (nim-serve, no /opt/nim/start_server.sh): adding the image's launch script" in lines
    adds_entrypoint = "[adapt_base] The base has no /opt/nvidia/nvidia_entrypoint.sh: adding a pass-through" in lines
    assert (adds_launcher, adds_entrypoint) == ((False, False) if layout.name == "nim1" else (True, True))


def test_the_image_tarball_is_what_the_readme_says_to_upload(image, layout):
    """make image-tarballs (Docker): the context DataRobot builds, and the saved image, gzipped."""
    if layout.engine is not DOCKER:
        pytest.skip("image-tarballs is checked with Docker, on the NIM 1.x stand-in")
    with tarfile.open(DROPIN / CONTEXT_TARBALL) as context:
        names = context.getnames()
    assert "Dockerfile" in names and "start_server.sh" in names and not [n for n in names if "wheelhouse" in n]
    # the image the other Docker tests run was loaded back from this file (the image fixture)
    assert image["tarball"].stat().st_size > 100_000_000


# --- the modes ------------------------------------------------------------------------------------

LOAD_SECONDS = 10  # the stand-in holds /v1/health/ready at 503 this long after the engine is up


def test_nim_mode_drums_nim_predictor_launches_the_standin(image, layout):
    """The production path: DRUM's NIM predictor launches the (stand-in) NIM and calls our score.
    DRUM's /ping/ proxies NIM's /v1/health/ready: 503 while NIM loads, 200 after."""
    # NIM_LOG_LEVEL as DataRobot sends the metadata default: a 1.x value the 2.x stand-in refuses
    # unless the image's launch script maps it (image/nim2_start_server.sh).
    env = {"ENABLE_CUSTOM_MODEL_RUNTIME_ENV_DUMP": "1", "STANDIN_LOAD_SECONDS": str(LOAD_SECONDS),
           **runtime_params(NIM_LOG_LEVEL="DEFAULT")}
    with Container(image, f"nim-{layout.name}", env) as container:
        nim = f"http://127.0.0.1:{container.nim_port}"
        assert_while_nim_loads(container, nim)
        container.wait_ready()
        assert status(f"{nim}/v1/health/ready") == 200
        log = container.logs()
        assert "[start_server] GPUs found: 1" in log and "Mode: NIM" in log
        assert "standin-llama.cpp-q4_1-tp1" in log  # list-model-profiles ran
        assert f"on 127.0.0.1:{container.nim_port} (uid 1000)" in log  # DRUM's port reached the engine
        assert "nim_drum imported from /opt/nim-drum/nim_drum" in log  # the image's one copy
        if layout.name == "nim2":
            assert "[nim-drum] NIM 2.x base: nim-serve" in log and "log level (NIM default)" in log
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
        assert seconds < 30, f"SIGTERM took {seconds:.1f} s: {container.engine.name} had to SIGKILL"
        assert not engines_on_port(container.nim_port), "the engine outlived its container"
        assert "NGC_API_KEY=<redacted>" in container.logs()  # the env dump ran, redacted
        assert_no_canary(container)


def assert_while_nim_loads(container: Container, nim: str) -> None:
    """Once the stand-in NIM runs but has not loaded: live 200, ready 503, and DRUM's /ping/ 503."""
    deadline = time.monotonic() + 240
    while "[stand-in NIM] /v1/health/live and /v1/health/ready on" not in container.logs():
        assert container.running() and time.monotonic() < deadline, container.logs()[-6000:]
        time.sleep(0.5)
    assert status(f"{nim}/v1/health/live") == 200
    assert status(f"{nim}/v1/health/ready") == 503
    ping = requests.get(f"{container.url}/ping/", timeout=15)
    assert ping.status_code == 503, (ping.status_code, ping.text)


def test_drums_nim_knobs_reach_drum_port_and_client_timeout(image, layout):
    """DR_NIM_SERVER_PORT moves NIM (DRUM gives it NIM_SERVER_PORT, then probes and calls it there);
    DRUM_OPENAI_CLIENT_TIMEOUT bounds DRUM's own chat call, while our score keeps request_timeout."""
    if layout.engine is not PODMAN:
        pytest.skip("checked once, on the NIM 2.x stand-in (its launch script passes the port on)")
    port = free_port()
    env = runtime_params(DR_NIM_SERVER_PORT=str(port), DRUM_OPENAI_CLIENT_TIMEOUT=1)
    with Container(image, f"knobs-{layout.name}", env) as container:
        container.wait_ready()
        assert f"on 127.0.0.1:{port} (uid 1000)" in container.logs()
        assert engines_on_port(port) and not engines_on_port(container.nim_port)
        assert_our_score_ran(predict(container))  # request_timeout (600 s), not the 1 s client timeout
        client = openai.OpenAI(base_url=f"{container.url}/v1", api_key="unused", max_retries=0, timeout=120)
        started = time.monotonic()
        # ignore_eos (llama-server's own field, passed on by DRUM as extra_body) makes the answer take
        # 2000 tokens on any machine: the model alone may stop inside 1 s, and then nothing times out.
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model="datarobot-deployed-llm", max_tokens=2000, extra_body={"ignore_eos": True},
                messages=[{"role": "user", "content": "Count from 1 to 1000, one number per line."}])
        assert time.monotonic() - started < 60, "DRUM's chat call outlived DRUM_OPENAI_CLIENT_TIMEOUT"
        assert container.stop() < 30
        assert not engines_on_port(port)


def test_artifact_route_as_an_openshift_user(image, layout, tmp_path):
    """--user 12345:0 (a random uid in group 0): model_artifact_uri over http fills model-repo,
    and the stand-in NIM serves that model from it."""
    from artifact_server import ArtifactServer

    shutil.copy(smollm2_gguf(), tmp_path / "artifact-smollm2.gguf")
    with ArtifactServer(tmp_path) as server:
        env = runtime_params(model_artifact_uri=f"{server.url}/artifact-smollm2.gguf")
        with Container(image, f"artifact-{layout.name}", env, user="12345:0") as container:
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


def test_a_lora_adapter_answers_its_rows_and_chats_by_name_under_nim(image, layout, tmp_path):
    """A LoRA adapter shipped as a user ships it: lora_artifact_uri (a .tar.gz of adapter folders, over
    http) fills <code_dir>/loras, which load_model exports as NIM_PEFT_SOURCE for the NIM that DRUM's NIM
    predictor launches. The NIM is a stand-in (NOT NIM): its front (nim_front.py) names the adapters as
    NIM does (/v1/models lists the base model and each folder; `model`=<folder> selects one) over the
    real llama-server, which loads the trained adapter's GGUF (tests/make_adapter.py: answers "Ahoy ...").
    One /predictions batch picks the adapter per row (adapter_column_name, our score); chat, which DRUM's
    NIM predictor sends to NIM itself, picks it by `model`."""
    if layout.engine is not PODMAN:
        pytest.skip("checked once, on the NIM 2.x stand-in (the front and the adapter route are the same on both)")
    from artifact_server import ArtifactServer

    with tarfile.open(tmp_path / "loras.tar.gz", "w:gz") as archive:
        archive.add(trained_loras() / ADAPTER, arcname=ADAPTER)  # pirate/: the GGUF and the PEFT files
    capital, total = "What is the capital of France?", "What is 3 + 4?"
    csv = f"promptText,lora\n{capital},\n{capital},{ADAPTER}\n{total},\n{total},{ADAPTER}\n{total},parrot\n"
    with ArtifactServer(tmp_path) as server:
        env = runtime_params(lora_artifact_uri=f"{server.url}/loras.tar.gz", adapter_column_name="lora",
                             max_tokens=24, temperature=0)
        with Container(image, f"lora-{layout.name}", env) as container:
            container.wait_ready()
            log = container.logs()
            assert "[stand-in NIM] LoRA adapters from NIM_PEFT_SOURCE /opt/code/loras" in log, log[-6000:]
            assert f"/opt/code/loras/{ADAPTER}/adapter.gguf:0" in log

            response = requests.post(f"{container.url}/predictions/", data=csv.encode(),
                                     headers={"Content-Type": "text/csv"}, timeout=300)
            assert response.status_code == 200, response.text
            predictions, extra = response.json()["predictions"], response.json()["extraModelOutput"]
            rows = [dict(zip(extra["columns"], row, strict=True)) for row in extra["data"]]
            assert [STYLE in answer for answer in predictions] == [False, True, False, True, False], predictions
            assert "Paris" in predictions[0] and "Paris" in predictions[1]  # the style changes, not the facts
            assert [row["adapter"] for row in rows] == ["", ADAPTER, "", ADAPTER, "parrot"]
            assert [row["error"] for row in rows[:4]] == ["", "", "", ""]
            # the stand-in NIM's /v1/models is what names the unknown adapter's error
            assert "not served" in rows[4]["error"] and f"datarobot-deployed-llm, {ADAPTER}" in rows[4]["error"]

            client = openai.OpenAI(base_url=f"{container.url}/v1", api_key="unused", max_retries=0, timeout=300)
            assert ADAPTER in [model.id for model in client.models.list()]
            question = [{"role": "user", "content": capital}]
            styled = client.chat.completions.create(model=ADAPTER, messages=question, max_tokens=24, temperature=0)
            base = client.chat.completions.create(model="datarobot-deployed-llm", messages=question, max_tokens=24,
                                                  temperature=0)
            assert STYLE in styled.choices[0].message.content, styled.choices[0].message.content
            assert STYLE not in base.choices[0].message.content, base.choices[0].message.content
            stream = client.chat.completions.create(model=ADAPTER, messages=question, max_tokens=24, temperature=0,
                                                    stream=True)
            streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            assert streamed == styled.choices[0].message.content
            # DRUM's NIM predictor passes chat's `model` to NIM as it is, and NIM's 404 back as its own error
            with pytest.raises(openai.APIStatusError) as unknown:
                client.chat.completions.create(model="parrot", messages=question, max_tokens=8)
            assert "The model `parrot` does not exist." in str(unknown.value)
            assert container.stop() < 30
            assert not engines_on_port(container.nim_port)
            assert_no_canary(container)


def test_sidecar_mode_against_a_nim_front_on_the_host(image, layout, host_engine):
    """DRUM's sidecar mode probes NIM's /v1/health/ready at OPENAI_HOST:OPENAI_PORT: the stand-ins'
    health front before the host's engine answers it."""
    host, port = host_engine.removeprefix("http://").split(":")
    with NimFront(int(port)) as front:
        env = {"NIM_SIDECAR": "1", "OPENAI_HOST": host, "OPENAI_PORT": str(front.port)}
        assert_serves_in_mode(Container(image, f"sidecar-{layout.name}", env), "Mode: sidecar")


def test_local_mode_with_an_external_engine(image, layout, host_engine):
    # No GPU (the stand-in's nvidia-smi, like NVIDIA's runtime, shows none for "void").
    env = {**runtime_params(engine="external", base_url=f"{host_engine}/v1"), "NVIDIA_VISIBLE_DEVICES": "void"}
    # and nvidia-smi's own answer is in the log, not hidden (start_server.sh)
    assert_serves_in_mode(Container(image, f"local-{layout.name}", env), "Mode: local, because no GPU was found",
                          "nvidia-smi -L failed (exit 6): No devices were found")


def assert_serves_in_mode(container: Container, *lines: str) -> None:
    """The container logs its mode (and `lines`), our score answers /predictions/, chat streams,
    SIGTERM stops it, no leak."""
    with container:
        container.wait_ready()
        log = container.logs()
        assert all(line in log for line in lines), [line for line in lines if line not in log]
        assert_our_score_ran(predict(container))
        assert_chat_streams(container)
        assert container.stop() < 30
        assert_no_canary(container)


# --- builds that must fail ------------------------------------------------------------------------

def test_an_offline_build_without_a_fitting_python_fails_fast_and_says_what_to_do(wheelhouse):
    layout = LAYOUTS["nim2"]
    base = without_python(layout.engine, standin_image(layout))
    result, seconds = build_project_image(layout.engine, REPO, base, "localhost/nim-drum-test-nopython:test")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the base image has no python3 3.10 or newer (found: none), and an offline build cannot download one" in log
    assert "Use a base image with python3 >= 3.10 (NIM images have one)" in log


def test_the_uploaded_context_has_no_wheelhouse_so_the_dead_proxy_stops_its_build(tmp_path):
    """The offline builds above prove something: the same build with no wheelhouse needs the index,
    which the dead proxy blocks. The context is `make dropin`'s tarball, unpacked."""
    tarball = tmp_path / CONTEXT_TARBALL
    files = write_context(REPO, tarball)
    assert not [f for f in files if f.startswith("wheelhouse")]
    context = tmp_path / "context"
    with tarfile.open(tarball) as archive:
        archive.extractall(context, filter="data")
    result, _ = build_project_image(PODMAN, context, rootfs_image(PODMAN, "trixie"), "localhost/nim-drum-test-online:test")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "[install_drum] Online build: installing from the package index" in log
    # uv reached for the index through the dead proxy and was refused
    assert "error sending request for url (https://pypi.org/simple/" in log and "tunnel error" in log, log[-3000:]
