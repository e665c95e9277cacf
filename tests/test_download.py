"""The downloader against real servers: a local HTTP server (Range, drops, 503s, TLS) and moto's S3."""

import hashlib
import json
import logging
import os
import subprocess
import sys
import time

import pytest

from nim_drum.artifacts.fetch import fetch
from nim_drum.artifacts.sources import DownloadOptions
from nim_drum.config.runtime_params import Credential
from nim_drum.errors import ArtifactError
from nim_drum.redaction import redact

from artifact_server import ArtifactServer, s3_server
from helpers import REPO, wait_until

SIZE = 1_000_000
FAST = DownloadOptions(backoff_first=0.01)


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    data = os.urandom(SIZE)
    (root / "model.bin").write_bytes(data)
    with ArtifactServer(root) as server:
        server.data = data
        yield server


def partial_of(folder):
    return next(folder.glob("*.incomplete"))


def test_dropped_connection_resumes_with_range_and_fetches_only_missing_bytes(served, tmp_path):
    served.drops = [300_000]
    fetched = fetch(f"{served.url}/model.bin", tmp_path / "dl", FAST)
    assert fetched.path.read_bytes() == served.data
    assert fetched.sha256 == hashlib.sha256(served.data).hexdigest()
    first, second = served.gets("model.bin")
    assert "Range" not in first["headers"] and first["sent"] == 300_000
    assert second["headers"]["Range"] == "bytes=300000-" and second["headers"]["If-Range"]
    assert served.bytes_sent("model.bin") == SIZE
    assert list((tmp_path / "dl").iterdir()) == [fetched.path]  # no .incomplete left behind


def test_a_killed_download_resumes_after_restart(served, tmp_path):
    """A container restart: the process dies part way; the next one asks only for the rest."""
    served.bytes_per_second = 400_000
    folder = tmp_path / "dl"
    code = f"from nim_drum.artifacts.fetch import *; fetch({served.url + '/model.bin'!r}, Path({str(folder)!r}), DownloadOptions())"
    process = subprocess.Popen([sys.executable, "-c", "from pathlib import Path\n" + code], cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (list(folder.glob("*.incomplete")) and partial_of(folder).stat().st_size > 200_000):
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    kept = partial_of(folder).stat().st_size
    assert 200_000 < kept < SIZE
    served.bytes_per_second = None

    fetched = fetch(f"{served.url}/model.bin", folder, FAST)

    assert fetched.path.read_bytes() == served.data
    resumed = served.gets("model.bin")[-1]
    assert resumed["headers"]["Range"] == f"bytes={kept}-" and resumed["sent"] == SIZE - kept


def incomplete_name(uri, name):
    return f"{name}.{hashlib.sha256(uri.encode()).hexdigest()[:8]}.incomplete"


def test_a_partial_file_of_a_changed_source_is_not_resumed(served, tmp_path):
    """If-Range: the partial file's ETag no longer matches, so the server sends the whole file."""
    uri, folder = f"{served.url}/model.bin", tmp_path / "dl"
    folder.mkdir()
    (folder / incomplete_name(uri, "model.bin")).write_bytes(b"old" * 100_000)
    (folder / f"{incomplete_name(uri, 'model.bin')}.json").write_text(json.dumps({"validator": '"old-etag"'}))

    fetched = fetch(uri, folder, FAST)

    assert fetched.path.read_bytes() == served.data
    assert served.gets("model.bin")[0]["headers"]["Range"] == "bytes=300000-"
    assert served.bytes_sent("model.bin") == SIZE


def test_transient_errors_are_retried_with_backoff(served, tmp_path):
    served.failures = [503, 429, 502]
    fetched = fetch(f"{served.url}/model.bin", tmp_path / "dl", FAST)
    assert fetched.path.read_bytes() == served.data
    # The server counts a chunk after writing it: give its thread a moment to count the last one.
    assert wait_until(lambda: [r["sent"] for r in served.gets("model.bin")] == [0, 0, 0, SIZE], timeout=10), \
        [r["sent"] for r in served.gets("model.bin")]


def test_a_missing_file_fails_at_once_with_what_to_check(served, tmp_path):
    with pytest.raises(ArtifactError, match="HTTP 404; check model_artifact_uri"):
        fetch(f"{served.url}/nothing.bin", tmp_path / "dl", FAST)
    assert len(served.gets("nothing.bin")) == 1


def test_sha256_sidecar_is_checked_and_a_mismatch_deletes_the_download(served, tmp_path):
    good = hashlib.sha256(served.data).hexdigest()
    (served.root / "model.bin.sha256").write_text(f"{good}  model.bin\n")
    assert fetch(f"{served.url}/model.bin", tmp_path / "ok", FAST).sha256 == good

    (served.root / "model.bin.sha256").write_text("f" * 64 + "\n")
    with pytest.raises(ArtifactError, match="sha256 mismatch.*expected f{64}, got " + good):
        fetch(f"{served.url}/model.bin", tmp_path / "bad", FAST)
    assert list((tmp_path / "bad").iterdir()) == []


def test_given_sha256_wins_over_the_sidecar(served, tmp_path):
    (served.root / "model.bin.sha256").write_text("f" * 64)
    good = hashlib.sha256(served.data).hexdigest()
    assert fetch(f"{served.url}/model.bin", tmp_path / "dl", FAST, good.upper()).sha256 == good


def test_credentials_and_signed_queries_never_reach_logs_or_errors(served, tmp_path, caplog):
    served.token = "TOKEN-SECRET-1"
    options = DownloadOptions(credential=Credential("api_token", (("apiToken", "TOKEN-SECRET-1"),)), backoff_first=0.01)
    caplog.set_level(logging.DEBUG)
    served.drops = [1000]
    fetch(f"{served.url}/model.bin?X-Amz-Signature=SIG-SECRET-2", tmp_path / "dl", options)
    with pytest.raises(ArtifactError) as error:
        fetch(f"{served.url}/gone.bin?X-Amz-Signature=SIG-SECRET-2", tmp_path / "dl", options)
    with pytest.raises(ArtifactError) as refused:
        fetch("http://user:PASS-SECRET-3@127.0.0.1:9/x.bin?sig=SIG-SECRET-2", tmp_path / "dl",
              DownloadOptions(backoff_first=0.001))
    text = caplog.text + str(error.value) + str(refused.value) + repr(options)
    assert "/model.bin?<redacted>" in caplog.text and "SECRET" not in text
    assert served.gets("model.bin")[0]["headers"]["Authorization"] == "Bearer TOKEN-SECRET-1"


def test_redact_keeps_host_and_path():
    assert redact("https://u:p@h.example:8443/a/b.tgz?sig=1#f") == "https://h.example:8443/a/b.tgz?<redacted>"
    assert redact("s3://bucket/key.tgz") == "s3://bucket/key.tgz"
    assert redact("/local/path.tgz") == "/local/path.tgz"


def test_tls_is_verified_unless_verify_ssl_is_false(served, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    served.httpd.socket = context.wrap_socket(served.httpd.socket, server_side=True)
    url = served.url.replace("http://", "https://") + "/model.bin"
    with pytest.raises(ArtifactError, match="TLS verification failed.*set verifySSL to false"):
        fetch(url, tmp_path / "a", FAST)
    assert fetch(url, tmp_path / "b", DownloadOptions(verify_ssl=False)).path.read_bytes() == served.data


# --- s3:// on an S3-compatible server (moto in server mode) --------------------------------------


@pytest.fixture
def s3(tmp_path):
    credential = Credential("s3", (("awsAccessKeyId", "AKIDTEST"), ("awsSecretAccessKey", "S3-SECRET-4")))
    with s3_server("models", "S3-SECRET-4") as (client, endpoint):
        yield client, DownloadOptions(credential=credential, s3_endpoint_url=endpoint, backoff_first=0.01)


def test_s3_download_with_sidecar_checksum(s3, tmp_path):
    client, options = s3
    data = os.urandom(SIZE)
    client.put_object(Bucket="models", Key="llm/store.bin", Body=data)
    client.put_object(Bucket="models", Key="llm/store.bin.sha256", Body=hashlib.sha256(data).hexdigest())
    fetched = fetch("s3://models/llm/store.bin", tmp_path / "dl", options)
    assert fetched.path.read_bytes() == data

    client.put_object(Bucket="models", Key="llm/store.bin.sha256", Body="0" * 64)
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        fetch("s3://models/llm/store.bin", tmp_path / "bad", options)


def test_s3_resumes_with_a_range_request(s3, tmp_path):
    """The kept prefix is not fetched again: a marked prefix survives into the result."""
    client, options = s3
    data = os.urandom(SIZE)
    etag = client.put_object(Bucket="models", Key="store.bin", Body=data)["ETag"]
    folder = tmp_path / "dl"
    folder.mkdir()
    name = incomplete_name("s3://models/store.bin", "store.bin")
    (folder / name).write_bytes(b"X" * 400_000)
    (folder / f"{name}.json").write_text(json.dumps({"validator": etag}))

    fetched = fetch("s3://models/store.bin", folder, options)

    assert fetched.path.read_bytes() == b"X" * 400_000 + data[400_000:]


def test_s3_missing_key_says_what_to_check(s3, tmp_path):
    _, options = s3
    with pytest.raises(ArtifactError, match="NoSuchKey.*check the bucket, the key"):
        fetch("s3://models/absent.tgz", tmp_path / "dl", options)


def test_progress_is_logged_with_bytes_rate_and_time_left(served, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    served.bytes_per_second = 2_000_000
    fetch(f"{served.url}/model.bin", tmp_path / "dl", DownloadOptions(progress_interval=0.1))
    progress = [r.getMessage() for r in caplog.records if "s left" in r.getMessage()]
    assert progress and all(" of 1.0 MB (" in line and "/s, about" in line for line in progress)
    assert "downloaded 1.0 MB of 1.0 MB (100%)" in caplog.text
