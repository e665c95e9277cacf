"""Put this environment and a model on it into DataRobot with the `datarobot` SDK, in the order a user works.

    python -m nim_drum.devtools.deploy environment   the environment version: make image-tarballs' two files
    python -m nim_drum.devtools.deploy model         a custom model and its version: the model's files and values
    python -m nim_drum.devtools.deploy deploy        the registered version and the deployment; prints the chat URL
    python -m nim_drum.devtools.deploy batch         a batch prediction job over a CSV, chunked to fit the deadline

Reads DATAROBOT_ENDPOINT and DATAROBOT_API_TOKEN (the SDK's own variables) and each step's files.
Writes into DataRobot (nothing locally but the batch step's output CSV); each step prints the ID the
next one takes. --dry-run prints every SDK call with its arguments (the token redacted; credentials
go by their DataRobot ID) and sends nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from nim_drum.devtools.deploy_values import DeployValues, read_values
from nim_drum.devtools.dropin import CONTEXT_TARBALL, DEFAULT_OUTPUT, IMAGE_TARBALL, REPO, model_files
from nim_drum.devtools.help_format import DefaultsHelpFormatter
from nim_drum.devtools.sdk_calls import Calls, secret
from nim_drum.errors import ConfigError
from nim_drum.serving.chunks import fitting_chunk_bytes

DEFAULT_ENDPOINT = "https://app.datarobot.com/api/v2"
TOKEN_ENV, ENDPOINT_ENV = "DATAROBOT_API_TOKEN", "DATAROBOT_ENDPOINT"
DEFAULT_TARGET_NAME = "resultText"
DEFAULT_MODEL_NAME = "Llama 3.1 8B Instruct (NIM)"
# ExecutionEnvironmentVersion.upload and CustomModelVersion.create_clean wait this long for DataRobot
# to finish (building the environment from a multi-GB image takes a while).
DEFAULT_MAX_WAIT = 3600


def connect(calls: Calls, endpoint: str, dry_run: bool) -> None:
    token = os.environ.get(TOKEN_ENV, "")
    if not token and not dry_run:
        raise ConfigError(f"{TOKEN_ENV} is not set: export your DataRobot API key (Developer tools > API keys).")
    calls("Client", endpoint=endpoint, token=secret(token, TOKEN_ENV))


def upload_environment(calls: Calls, args: argparse.Namespace) -> None:
    context, image = args.context, args.image
    for path, what in ((context, "--context"), (image, "--image")):
        if not path.is_file():
            raise ConfigError(f"{what} {path} does not exist: run `make image-tarballs` on a GPU host first.")
    info = json.loads(args.env_info.read_text())
    connect(calls, args.endpoint, args.dry_run)
    environment_id = args.environment_id or calls(
        "ExecutionEnvironment.create", name=info["name"], description=info["description"],
        programming_language=info["programmingLanguage"], use_cases=info["useCases"],
        is_public=info["isPublic"]).id
    version = calls("ExecutionEnvironmentVersion.upload", environment_id, docker_image_path=str(image),
                    docker_context_path=str(context), label=info["label"],
                    description=info["environmentVersionDescription"], max_wait=args.max_wait)
    print(f"Environment {environment_id}, version {version.id}: build_status {version.build_status}.")
    print(f"Next: python -m nim_drum.devtools.deploy model --environment-id {environment_id} --values FILE")


def create_model(calls: Calls, args: argparse.Namespace) -> None:
    values = read_values(args.values, args.code_dir)
    files = [(str(args.code_dir / f), f) for f in model_files(args.code_dir)]
    connect(calls, args.endpoint, args.dry_run)
    model_id = args.model_id or calls(
        "CustomInferenceModel.create", name=args.name, target_type="TextGeneration",
        target_name=args.target_name, language="python").id
    version = calls("CustomModelVersion.create_clean", custom_model_id=model_id,
                    base_environment_id=args.environment_id, files=files,
                    runtime_parameter_values=calls.runtime_parameter_values(values), max_wait=args.max_wait)
    print(f"Custom model {model_id}, version {version.id} ({len(files)} files, "
          f"{len(values.values)} runtime parameter values).")
    print("Choose a GPU resource bundle for this version in the UI (Model workshop > the model > Resources) "
          "unless it uses engine=external.")
    print(f"Next: python -m nim_drum.devtools.deploy deploy --model-version-id {version.id}")


def deploy(calls: Calls, args: argparse.Namespace) -> None:
    connect(calls, args.endpoint, args.dry_run)
    registered = calls("RegisteredModelVersion.create_for_custom_model_version", args.model_version_id,
                       registered_model_name=args.name)
    server_id = args.prediction_server_id
    if server_id is None:
        servers = calls("PredictionServer.list")
        server_id = servers[0].id if servers else None  # SaaS needs one; self-managed may have none
    deployment = calls("Deployment.create_from_registered_model_version", registered.id, label=args.name,
                       default_prediction_server_id=server_id, max_wait=args.max_wait)
    print(chat_instructions(args.endpoint, str(deployment.id)))
    print(f"Batch: python -m nim_drum.devtools.deploy batch --deployment-id {deployment.id} --input CSV --output CSV")


def chat_instructions(endpoint: str, deployment_id: str) -> str:
    base_url = chat_base_url(endpoint, deployment_id)
    return f"""Chat base URL: {base_url}
    import os
    from openai import OpenAI

    client = OpenAI(base_url="{base_url}", api_key=os.environ["{TOKEN_ENV}"])
    reply = client.chat.completions.create(
        model="datarobot-deployed-llm",
        messages=[{{"role": "user", "content": "What is the capital of France?"}}],
    )
    print(reply.choices[0].message.content)"""


def chat_base_url(endpoint: str, deployment_id: str) -> str:
    # The OpenAI client appends chat/completions: DataRobot serves it at <endpoint>/deployments/<id>/chat/completions.
    return f"{endpoint.rstrip('/')}/deployments/{deployment_id}/"


def batch_job(calls: Calls, args: argparse.Namespace) -> None:
    values = read_values(args.values, args.code_dir)
    columns, rows, bytes_per_row = csv_shape(args.input)
    passthrough = checked_columns(args.passthrough_columns, columns, args.input)
    chunk_size = planned_chunk_size(args.rows_per_second, values, bytes_per_row)
    connect(calls, args.endpoint, args.dry_run)
    settings: dict[str, Any] = {"num_concurrent": args.num_concurrent, "chunk_size": chunk_size,
                                "passthrough_columns": passthrough}
    job = calls("BatchPredictionJob.score", args.deployment_id,
                intake_settings={"type": "localFile", "file": str(args.input)},
                output_settings={"type": "localFile", "path": str(args.output)},
                **{k: v for k, v in settings.items() if v is not None})
    print(f"Batch prediction job {job.id}: {rows} rows in {args.input}, predictions in {args.output}.")


def csv_shape(path: Path) -> tuple[list[str], int, float]:
    """The CSV's columns, its rows, and its mean bytes per row (what DataRobot's chunk_size counts)."""
    if not path.is_file():
        raise ConfigError(f"--input {path} does not exist.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"--input {path} is not a CSV that pandas can read: {err}") from err
    if frame.empty:
        raise ConfigError(f"--input {path} has no rows.")
    with open(path, "rb") as raw:
        header = len(raw.readline())
    return list(frame.columns), len(frame), (path.stat().st_size - header) / len(frame)


def checked_columns(names: list[str] | None, columns: list[str], path: Path) -> list[str] | None:
    missing = [n for n in names or [] if n not in columns]
    if missing:
        raise ConfigError(f"--passthrough-columns {missing} are not columns of {path}; it has {columns}.")
    return names


def planned_chunk_size(rows_per_second: float | None, values: DeployValues, bytes_per_row: float) -> int | None:
    """Bytes per chunk so that one chunk finishes inside the deployment's batch deadline at the measured rate."""
    seconds = values.deadline_seconds()
    if rows_per_second is None or seconds is None:
        why = "no --rows-per-second" if rows_per_second is None else "the deployment has no batch deadline"
        print(f"chunk_size: DataRobot's default ({why}).")
        return None
    size = fitting_chunk_bytes(rows_per_second, seconds, bytes_per_row)
    print(f"chunk_size: {size} bytes = {rows_per_second:g} rows/s x {seconds:g} s deadline x {bytes_per_row:.0f} "
          "bytes/row, with a margin.")
    return size


# --- The command line --------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m nim_drum.devtools.deploy", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = top.add_subparsers(dest="step", required=True, metavar="STEP")
    environment = _step(steps, "environment", upload_environment,
                        "Upload the context and the saved image (make image-tarballs) as an environment version.")
    environment.add_argument("--context", type=Path, default=DEFAULT_OUTPUT / CONTEXT_TARBALL,
                             help="the Docker context tarball")
    environment.add_argument("--image", type=Path, default=DEFAULT_OUTPUT / IMAGE_TARBALL,
                             help="the saved image (docker save | gzip)")
    environment.add_argument("--env-info", type=Path, default=REPO / "env_info.json",
                             help="name, description, label and flags of the environment")
    environment.add_argument("--environment-id", help="add the version to this environment instead of a new one")
    model = _step(steps, "model", create_model,
                  "Create a custom model and a version with the model's files and runtime parameter values.")
    model.add_argument("--environment-id", required=True, help="the environment the version runs on")
    model.add_argument("--values", type=Path, help="runtime parameter values (YAML; see examples/); "
                       "default: none, the metadata's defaults")
    model.add_argument("--name", default=DEFAULT_MODEL_NAME, help="the custom model's name")
    model.add_argument("--target-name", default=DEFAULT_TARGET_NAME, help="the prediction column's name")
    model.add_argument("--model-id", help="add a version to this custom model instead of creating one")
    deployment = _step(steps, "deploy", deploy,
                       "Register a custom model version and deploy it; print the chat base URL and an openai snippet.")
    deployment.add_argument("--model-version-id", required=True, help="the custom model version to deploy")
    deployment.add_argument("--name", default=DEFAULT_MODEL_NAME, help="the registered model's and deployment's name")
    deployment.add_argument("--prediction-server-id",
                            help="default: the first of PredictionServer.list(), when there is one (SaaS)")
    batch = _step(steps, "batch", batch_job, "Score a CSV with a batch prediction job (BatchPredictionJob.score).")
    batch.add_argument("--deployment-id", required=True, help="the deployment to score with")
    batch.add_argument("--input", type=Path, required=True, help="the CSV to score")
    batch.add_argument("--output", type=Path, required=True, help="where the scored CSV goes")
    batch.add_argument("--rows-per-second", type=float,
                       help="the deployment's measured rate: rows/s of its `Batch scored:` log line; sets chunk_size "
                            "so one chunk fits the batch deadline (default: none, DataRobot's chunk size)")
    batch.add_argument("--values", type=Path, help="the model version's values file, for its batch deadline "
                       "(batch_deadline_seconds, else 90%% of DRUM_CLIENT_REQUEST_TIMEOUT); default: the defaults")
    batch.add_argument("--num-concurrent", type=int, help="chunks in flight at once (default: DataRobot's)")
    batch.add_argument("--passthrough-columns", type=lambda text: [c for c in text.split(",") if c],
                       help="input columns copied to the output, comma-separated (default: none)")
    return top


STEP_FILES = {
    "environment": "Reads --context, --image and --env-info. Writes an environment (unless --environment-id) "
                   "and a version of it in DataRobot.",
    "model": "Reads --code-dir's model files (custom.py, model-metadata.yaml, nim_drum/ less devtools) and "
             "--values. Writes a custom model (unless --model-id) and a version of it in DataRobot.",
    "deploy": "Reads nothing locally. Writes a registered model version and a deployment in DataRobot; "
              "prints the chat base URL.",
    "batch": "Reads --input and --values. Writes a batch prediction job in DataRobot, and its scored CSV to --output.",
}


def _step(steps: Any, name: str, run: Callable, summary: str) -> argparse.ArgumentParser:
    step = steps.add_parser(name, help=summary, description=summary, epilog=STEP_FILES[name],
                            formatter_class=DefaultsHelpFormatter)
    step.set_defaults(run=run)
    step.add_argument("--dry-run", action="store_true", help="print every SDK call and its arguments; send nothing")
    step.add_argument("--endpoint", default=os.environ.get(ENDPOINT_ENV, DEFAULT_ENDPOINT),
                      help=f"DataRobot's API endpoint (${ENDPOINT_ENV})")
    step.add_argument("--code-dir", type=Path, default=REPO, help="the model's folder: custom.py and the rest")
    if name in ("environment", "model", "deploy"):
        step.add_argument("--max-wait", type=int, default=DEFAULT_MAX_WAIT, help="seconds to wait for DataRobot")
    return step


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from datarobot import errors as sdk_errors

    try:
        args.run(Calls(args.dry_run), args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (sdk_errors.AppPlatformError, sdk_errors.AsyncTimeoutError, sdk_errors.AsyncFailureError) as err:
        # datarobot 3.20's client.py quotes the token in its 401 message: never print it.
        print(f"error: DataRobot answered: {without_token(str(err))}", file=sys.stderr)
        return 1
    return 0


def without_token(text: str) -> str:
    token = os.environ.get(TOKEN_ENV, "")
    return text.replace(token, f"<{TOKEN_ENV}, redacted>") if token else text


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
