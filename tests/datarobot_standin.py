"""A stand-in for DataRobot's REST API at the HTTP boundary, for the deploy tool's tests.

DataRobot is not reachable here. The real `datarobot` SDK (3.20.0) makes its real HTTP requests;
`responses` answers them with the smallest JSON the SDK accepts, and records what DataRobot would
have received (JSON bodies, multipart fields and files) so that tests can assert on it. This is not
DataRobot: it checks nothing DataRobot itself would check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import responses
from requests_toolbelt.multipart.decoder import MultipartDecoder

ENDPOINT = "http://datarobot.standin/api/v2"
ENV_ID, VERSION_ID, MODEL_ID, MODEL_VERSION_ID = "env0001", "envver0001", "cm0001", "cmv0001"
PACKAGE_ID, DEPLOYMENT_ID, SERVER_ID, JOB_ID = "pkg0001", "dep0001", "ps0001", "job0001"
SCORED_CSV = b"promptText,id,resultText_PREDICTION\nhello,1,Hi.\nworld,2,Hello.\n"


@dataclass
class Received:
    method: str
    path: str
    json: Any = None
    fields: list[tuple[str, str | None, bytes]] = field(default_factory=list)  # (name, filename, content)
    body: bytes = b""

    def field(self, name: str) -> bytes:
        return next(content for field_name, _, content in self.fields if field_name == name)

    def all(self, name: str) -> list[tuple[str | None, bytes]]:
        return [(filename, content) for field_name, filename, content in self.fields if field_name == name]


class DataRobotStandIn:
    def __init__(self, mock: responses.RequestsMock):
        self.received: list[Received] = []
        mock.add_callback(responses.GET, re.compile(r".*"), callback=self._answer)
        for method in (responses.POST, responses.PUT, responses.PATCH, responses.DELETE):
            mock.add_callback(method, re.compile(r".*"), callback=self._answer)

    def sent(self, method: str, path: str) -> Received:
        return next(r for r in self.received if r.method == method and r.path == path)

    def _answer(self, request) -> tuple[int, dict, str | bytes]:
        path = urlparse(request.url).path.removeprefix(urlparse(ENDPOINT).path)
        self.received.append(_received(request, path))
        for (method, pattern), answer in ROUTES.items():
            if method == request.method and re.fullmatch(pattern, path):
                status, body, *headers = answer
                if isinstance(body, bytes):
                    return status, {"Content-Type": "text/csv", **dict(*headers)}, body
                return status, {"Content-Type": "application/json", **dict(*headers)}, json.dumps(body)
        return 404, {}, json.dumps({"message": f"the stand-in has no route for {request.method} {path}"})


def _received(request, path: str) -> Received:
    body = request.body
    if hasattr(body, "read"):  # a MultipartEncoder, or an open file
        body = body.read()
    body = body.encode() if isinstance(body, str) else body or b""
    received = Received(request.method, path, body=body)
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("multipart/form-data"):
        for part in MultipartDecoder(body, content_type).parts:
            disposition = part.headers[b"Content-Disposition"].decode()
            name = re.search(r'name="([^"]*)"', disposition).group(1)
            filename = re.search(r'filename="([^"]*)"', disposition)
            received.fields.append((name, filename and filename.group(1), part.content))
    elif content_type.startswith("application/json") and body:
        received.json = json.loads(body)
    return received


VERSION = {"id": VERSION_ID, "environmentId": ENV_ID, "buildStatus": "success", "imageId": "img0001",
           "label": "nim", "description": ""}
ENVIRONMENT = {"id": ENV_ID, "name": "NIM", "programmingLanguage": "python", "isPublic": False}
MODEL = {"id": MODEL_ID, "name": "NIM", "targetType": "TextGeneration", "customModelType": "inference",
         "language": "python", "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
         "targetName": "resultText", "latestVersion": None, "description": "", "deploymentsCount": 0,
         "createdBy": "user", "trainingDataAssignmentInProgress": False}
MODEL_VERSION = {"id": MODEL_VERSION_ID, "customModelId": MODEL_ID, "label": "v1", "versionMajor": 1,
                 "versionMinor": 0, "isFrozen": False, "items": [], "created": "2026-01-01T00:00:00Z"}
PACKAGE = {"id": PACKAGE_ID, "name": "NIM", "registeredModelId": "rm0001", "registeredModelVersion": 1,
           "modelId": MODEL_VERSION_ID, "target": {"type": "TextGeneration", "name": "resultText"},
           "modelExecutionType": "custom_inference_model", "isArchived": False, "importMeta": {},
           "sourceMeta": {}, "modelKind": {}, "modelDescription": {}, "datasets": {}, "timeseries": {},
           "isDeprecated": False, "permissions": [], "activeDeploymentCount": 0}
DEPLOYMENT = {"id": DEPLOYMENT_ID, "label": "NIM"}
JOB = {"id": JOB_ID, "status": "COMPLETED", "percentageCompleted": 100, "elapsedTimeSec": 1,
       "links": {"self": f"{ENDPOINT}/batchPredictions/{JOB_ID}/",
                 "csvUpload": f"{ENDPOINT}/batchPredictions/{JOB_ID}/csvUpload/",
                 "download": f"{ENDPOINT}/batchPredictions/{JOB_ID}/download/"},
       "jobSpec": {"deploymentId": DEPLOYMENT_ID, "intakeSettings": {"type": "localFile"},
                   "outputSettings": {"type": "localFile"}, "numConcurrent": 2},
       "statusDetails": "Job done", "jobIntakeSize": 30, "jobOutputSize": 60, "scoredRows": 2, "failedRows": 0,
       "skippedRows": 0, "created": "2026-01-01T00:00:00Z", "createdBy": {"userId": "u", "username": "u"}}

ROUTES: dict[tuple[str, str], tuple] = {
    ("GET", "/version/"): (200, {"major": 2, "minor": 49, "versionString": "2.49.0"}),
    ("POST", "/executionEnvironments/"): (201, {"id": ENV_ID}),
    ("GET", f"/executionEnvironments/{ENV_ID}/"): (200, ENVIRONMENT),
    ("POST", f"/executionEnvironments/{ENV_ID}/versions/"): (202, {"id": VERSION_ID}),
    ("GET", f"/executionEnvironments/{ENV_ID}/versions/{VERSION_ID}/"): (200, VERSION),
    ("POST", "/customModels/"): (201, MODEL),
    ("POST", f"/customModels/{MODEL_ID}/versions/"): (201, MODEL_VERSION),
    ("GET", f"/customModels/{MODEL_ID}/versions/{MODEL_VERSION_ID}/"): (200, MODEL_VERSION),
    ("POST", "/modelPackages/fromCustomModelVersion/"): (201, PACKAGE),
    ("GET", f"/modelPackages/{PACKAGE_ID}/"): (200, PACKAGE),
    ("GET", "/predictionServers/"): (200, {"count": 1, "next": None, "previous": None, "data": [
        {"id": SERVER_ID, "url": "https://standin.dynamic.orm.datarobot.com", "datarobot-key": "k"}]}),
    ("POST", "/deployments/fromModelPackage/"): (202, {"id": DEPLOYMENT_ID}, {"Location": f"{ENDPOINT}/status/st0001/"}),
    ("GET", "/status/st0001/"): (303, {}, {"Location": f"{ENDPOINT}/deployments/{DEPLOYMENT_ID}/"}),
    ("GET", f"/deployments/{DEPLOYMENT_ID}/"): (200, DEPLOYMENT),
    ("POST", "/batchPredictions/"): (202, JOB, {"Location": f"{ENDPOINT}/batchPredictions/{JOB_ID}/"}),
    ("PUT", f"/batchPredictions/{JOB_ID}/csvUpload/"): (202, {}),
    ("GET", f"/batchPredictions/{JOB_ID}/"): (200, JOB),
    ("GET", f"/batchPredictions/{JOB_ID}/download/"): (200, SCORED_CSV),
}
