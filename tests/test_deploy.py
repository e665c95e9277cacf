"""The deploy tool (python -m nim_drum.devtools.deploy), against a stand-in for DataRobot's API.

DataRobot is not reachable here: the real `datarobot` SDK sends its real requests, and
tests/datarobot_standin.py (built on `responses`) answers them at the HTTP boundary and records what
DataRobot would have received. What DataRobot then does with it is not tested here.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import responses
import yaml
from datarobot_standin import (
    DEPLOYMENT_ID,
    ENDPOINT,
    ENV_ID,
    JOB_ID,
    MODEL_ID,
    MODEL_VERSION_ID,
    SCORED_CSV,
    DataRobotStandIn,
)

from nim_drum.devtools import deploy
from nim_drum.devtools.deploy_values import read_values
from nim_drum.devtools.dropin import model_files
from nim_drum.serving.chunks import fitting_chunk_bytes

from helpers import REPO

TOKEN = "drapi-canary-token-4e1f"
EXAMPLES = sorted((REPO / "examples").glob("values-*.yaml"))


@pytest.fixture
def datarobot(monkeypatch):
    monkeypatch.setenv(deploy.TOKEN_ENV, TOKEN)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield DataRobotStandIn(mock)


def run(*argv: str) -> int:
    return deploy.main([*argv, "--endpoint", ENDPOINT])


@pytest.fixture
def tarballs(tmp_path):
    context, image = tmp_path / "nim-drum-context.tar.gz", tmp_path / "nim-drum-image.tar.gz"
    context.write_bytes(b"context bytes")
    image.write_bytes(b"image bytes")
    return context, image


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.csv"
    pd.DataFrame({"promptText": ["hello", "world"], "id": ["1", "2"]}).to_csv(path, index=False)
    return path


def test_environment_uploads_both_tarballs_with_env_info(datarobot, tarballs, capsys):
    context, image = tarballs
    assert run("environment", "--context", str(context), "--image", str(image)) == 0
    info = json.loads((REPO / "env_info.json").read_text())
    created = datarobot.sent("POST", "/executionEnvironments/").json
    assert created == {"name": info["name"], "description": info["description"], "programmingLanguage": "python",
                       "isPublic": False, "useCases": ["customModel"]}
    upload = datarobot.sent("POST", f"/executionEnvironments/{ENV_ID}/versions/")
    assert upload.all("dockerContext") == [(context.name, b"context bytes")]
    assert upload.all("dockerImage") == [(image.name, b"image bytes")]
    assert upload.field("label").decode() == info["label"]
    assert f"--environment-id {ENV_ID}" in capsys.readouterr().out


def test_model_uploads_exactly_the_model_files_and_the_values(datarobot, tmp_path, capsys):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"NGC_API_KEY": {"credentialId": "cred-ngc-1"}, "max_tokens": 512,
                                      "engine": "external", "base_url": "http://nim:8000/v1", "verifySSL": False},
                                     sort_keys=False))
    assert run("model", "--environment-id", ENV_ID, "--values", str(values)) == 0
    model = datarobot.sent("POST", "/customModels/").json
    assert (model["targetType"], model["targetName"], model["language"]) == ("TextGeneration", "resultText", "python")
    version = datarobot.sent("POST", f"/customModels/{MODEL_ID}/versions/")
    paths = [content.decode() for _, content in version.all("filePath")]
    assert paths == model_files(REPO)
    assert "nim_drum/serving/scoring.py" in paths and not [p for p in paths if "devtools" in p]
    uploaded = dict(zip(paths, (content for _, content in version.all("file")), strict=True))
    assert uploaded["nim_drum/config/settings.py"] == (REPO / "nim_drum/config/settings.py").read_bytes()
    assert version.field("baseEnvironmentId").decode() == ENV_ID
    assert json.loads(version.field("runtimeParameterValues")) == [
        {"fieldName": "NGC_API_KEY", "type": "credential", "value": "cred-ngc-1"},
        {"fieldName": "max_tokens", "type": "numeric", "value": 512},
        {"fieldName": "engine", "type": "string", "value": "external"},
        {"fieldName": "base_url", "type": "string", "value": "http://nim:8000/v1"},
        {"fieldName": "verifySSL", "type": "boolean", "value": False},
    ]
    assert f"--model-version-id {MODEL_VERSION_ID}" in capsys.readouterr().out


def test_deploy_registers_deploys_and_prints_the_chat_base_url(datarobot, capsys):
    assert run("deploy", "--model-version-id", MODEL_VERSION_ID, "--name", "My NIM") == 0
    assert datarobot.sent("POST", "/modelPackages/fromCustomModelVersion/").json == {
        "customModelVersionId": MODEL_VERSION_ID, "registeredModelName": "My NIM"}
    deployment = datarobot.sent("POST", "/deployments/fromModelPackage/").json
    assert deployment["label"] == "My NIM" and deployment["defaultPredictionServerId"] == "ps0001"
    out = capsys.readouterr().out
    base_url = f"{ENDPOINT}/deployments/{DEPLOYMENT_ID}/"
    assert f"Chat base URL: {base_url}\n" in out
    assert f'OpenAI(base_url="{base_url}", api_key=os.environ["DATAROBOT_API_TOKEN"])' in out
    assert TOKEN not in out


def test_batch_job_sends_the_chunk_size_that_fits_the_deadline(datarobot, prompts, tmp_path, capsys):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"DRUM_CLIENT_REQUEST_TIMEOUT": 1200}))
    output = tmp_path / "scored.csv"
    assert run("batch", "--deployment-id", DEPLOYMENT_ID, "--input", str(prompts), "--output", str(output),
               "--rows-per-second", "3.5", "--values", str(values), "--num-concurrent", "4",
               "--passthrough-columns", "id") == 0
    bytes_per_row = (prompts.stat().st_size - len("promptText,id\n")) / 2
    job = datarobot.sent("POST", "/batchPredictions/").json
    # 90% of DRUM_CLIENT_REQUEST_TIMEOUT: 1080 s for one chunk at 3.5 rows/s.
    assert job["chunkSize"] == fitting_chunk_bytes(3.5, 1080, bytes_per_row)
    assert (job["numConcurrent"], job["passthroughColumns"], job["deploymentId"]) == (4, ["id"], DEPLOYMENT_ID)
    assert job["intakeSettings"] == {"type": "localFile"} and job["outputSettings"] == {"type": "localFile"}
    assert datarobot.sent("PUT", f"/batchPredictions/{JOB_ID}/csvUpload/").body == prompts.read_bytes()
    assert output.read_bytes() == SCORED_CSV
    assert "1080 s deadline" in capsys.readouterr().out


def test_batch_deadline_seconds_sets_the_chunk_size_and_none_without_a_rate(datarobot, prompts, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"batch_deadline_seconds": 100}))
    assert read_values(values, REPO).deadline_seconds() == 100
    assert run("batch", "--deployment-id", DEPLOYMENT_ID, "--input", str(prompts),
               "--output", str(tmp_path / "o.csv")) == 0
    job = datarobot.sent("POST", "/batchPredictions/").json
    assert "chunkSize" not in job and "numConcurrent" not in job and "passthroughColumns" not in job


@pytest.mark.parametrize("problem, argv, expected", [
    ("missing tarball", ["environment", "--context", "{tmp}/nope.tar.gz", "--image", "{tmp}/nope2.tar.gz"],
     "--context {tmp}/nope.tar.gz does not exist: run `make image-tarballs`"),
    ("unknown parameter", ["model", "--environment-id", ENV_ID, "--values", "{values}"],
     "'max_tokenz' is not a runtime parameter of model-metadata.yaml"),
    ("plain-string credential", ["model", "--environment-id", ENV_ID, "--values", "{values}"],
     "'NGC_API_KEY' is a credential parameter and is a str; give a DataRobot credential by its ID"),
    ("inline secret", ["model", "--environment-id", ENV_ID, "--values", "{values}"],
     "'engine_api_key' is a credential parameter and is an object with keys ['apiToken', 'credentialType']"),
    ("value the model refuses", ["model", "--environment-id", ENV_ID, "--values", "{values}"],
     "Runtime parameter 'engine' is 'gpu'; allowed: embedded, vllm, external"),
    ("wrong type", ["model", "--environment-id", ENV_ID, "--values", "{values}"],
     "'max_tokens' is a numeric parameter; got str '512'"),
    ("missing passthrough column", ["batch", "--deployment-id", DEPLOYMENT_ID, "--input", "{prompts}",
                                    "--output", "{tmp}/o.csv", "--passthrough-columns", "id,userId"],
     "--passthrough-columns ['userId'] are not columns of {prompts}"),
])
def test_bad_input_names_the_field_and_sends_nothing(datarobot, tmp_path, prompts, capsys, problem, argv, expected):
    values = {"unknown parameter": {"max_tokenz": 5}, "plain-string credential": {"NGC_API_KEY": "nvapi-secret-1"},
              "inline secret": {"engine_api_key": {"credentialType": "api_token", "apiToken": "nvapi-secret-1"}},
              "value the model refuses": {"engine": "gpu"}, "wrong type": {"max_tokens": "512"}}.get(problem, {})
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    fill = {"tmp": tmp_path, "values": values_file, "prompts": prompts}
    assert run(*(a.format(**fill) for a in argv)) == 2
    err = capsys.readouterr().err
    assert expected.format(**fill) in err
    assert "nvapi-secret-1" not in err
    assert datarobot.received == []


@pytest.mark.parametrize("step", [
    ["environment", "--context", "{context}", "--image", "{image}"],
    ["model", "--environment-id", ENV_ID, "--values", str(REPO / "examples" / "values-gpu.yaml")],
    ["deploy", "--model-version-id", MODEL_VERSION_ID],
    ["batch", "--deployment-id", DEPLOYMENT_ID, "--input", "{prompts}", "--output", "{tmp}/o.csv",
     "--rows-per-second", "2", "--num-concurrent", "2", "--passthrough-columns", "id"],
])
def test_dry_run_prints_every_call_redacted_and_sends_nothing(datarobot, tarballs, prompts, tmp_path, capsys, step):
    fill = {"context": tarballs[0], "image": tarballs[1], "prompts": prompts, "tmp": tmp_path}
    assert run(*(a.format(**fill) for a in step), "--dry-run") == 0
    out = capsys.readouterr().out
    calls = [line for line in out.splitlines() if line.startswith("dr.")]
    assert calls[0] == f"dr.Client(endpoint='{ENDPOINT}', token=<DATAROBOT_API_TOKEN, redacted>)"
    expected = {"environment": ["ExecutionEnvironment.create", "ExecutionEnvironmentVersion.upload"],
                "model": ["CustomInferenceModel.create", "CustomModelVersion.create_clean"],
                "deploy": ["RegisteredModelVersion.create_for_custom_model_version", "PredictionServer.list",
                           "Deployment.create_from_registered_model_version"],
                "batch": ["BatchPredictionJob.score"]}[step[0]]
    assert [c.split("(")[0].removeprefix("dr.") for c in calls[1:]] == expected
    if step[0] == "model":
        assert "RuntimeParameterValue(field_name='NGC_API_KEY', type='credential', value=" in out
        assert all(f"'{name}')" in out for name in model_files(REPO))
    if step[0] == "batch":
        assert "chunk_size=" in calls[1] and "num_concurrent=2" in calls[1] and "passthrough_columns=['id']" in calls[1]
    assert TOKEN not in out and datarobot.received == []


def test_a_refused_token_is_not_printed(datarobot, capsys, monkeypatch):
    from datarobot_standin import ROUTES

    monkeypatch.setitem(ROUTES, ("GET", "/version/"), (401, {"message": "Invalid API key"}))
    assert run("deploy", "--model-version-id", MODEL_VERSION_ID) == 1
    err = capsys.readouterr().err
    assert "DataRobot answered" in err and TOKEN not in err


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_values_file_is_what_the_model_accepts(example):
    values = read_values(example, REPO)
    assert values.values, example
    assert all(v.type != "credential" or v.value.startswith("<") for v in values.values)


def test_the_examples_are_the_three_the_readme_names():
    names = {p.name for p in EXAMPLES}
    assert names == {"values-hosted-nim.yaml", "values-vllm.yaml", "values-gpu.yaml"}
    readme = (REPO / "README.md").read_text()
    assert all(f"examples/{name}" in readme for name in names)
    engines = {name: read_values(REPO / "examples" / name, REPO).settings.engine for name in names}
    assert engines == {"values-hosted-nim.yaml": "external", "values-vllm.yaml": "vllm",
                       "values-gpu.yaml": "embedded"}  # embedded: DRUM's NIM predictor takes over on a GPU
