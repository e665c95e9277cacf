"""NIM's health routes and adapter names in front of a real engine, for the stand-in NIMs and the sidecar tests (tests only, NOT NIM).

    python3 nim_front.py --port PORT [--load-seconds N] -- ENGINE_COMMAND ... {upstream} ...
    python3 nim_front.py --port PORT --upstream ENGINE_PORT      (an engine that already runs)

NIM serves `/v1/health/live` (200 as soon as the process runs) and `/v1/health/ready` (503 until
the model is loaded, then 200). llama-server has neither, only `/health`. This front listens on
127.0.0.1:PORT, starts the engine as its child on a free port (`{upstream}` in the command), answers
the two routes itself and passes every other request through, streamed. Ready means: the engine's
`/health` answers 200 and, to stand in for a large model's load, --load-seconds have passed since
start. It exits with the engine it started, and stops that engine on SIGTERM.

NIM also serves each LoRA adapter folder in NIM_PEFT_SOURCE under the folder's name: `/v1/models`
lists the base model and every adapter, and a completion whose `model` names an adapter uses it; a
name it does not serve gets a 404. llama-server serves its --alias whatever `model` says, lists only
that at `/v1/models`, and applies GGUF adapters by id (their --lora/--lora-scaled order) through a
request's own `lora` field. So this front learns the adapters from the engine's `GET /lora-adapters`
(id and path: an adapter's name is the folder its file is in, as serve-engine loads them), adds them
to `/v1/models`, and rewrites a POST to /v1/chat/completions or /v1/completions: an adapter's name
becomes the base model with `lora` [{"id": i, "scale": 1.0}] for it and 0 for the others (all 0 for
the base model; a caller's own `lora` is kept), and any other name gets NIM's (vLLM's) 404, "The
model `x` does not exist.". Answers pass through as the engine wrote them (their `model` is the base
model's). Python's standard library only: it runs on the stand-ins' own python3 and on the host.
"""

from __future__ import annotations

import argparse
import http.client
import json
import posixpath
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
COMPLETIONS = ("/v1/chat/completions", "/v1/completions")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Front(BaseHTTPRequestHandler):
    upstream = 0
    ready_after = 0.0
    served: tuple[list[str], list[str]] | None = None  # (base models, adapters by id), once the engine says
    served_lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass

    def answer(self, status: int, message: str) -> None:
        self.answer_json(status, {"object": "health-response", "message": message})

    def answer_json(self, status: int, document: object) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def engine_ready(self) -> bool:
        if time.monotonic() < self.ready_after:
            return False
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=4)
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def engine_json(self, path: str) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"GET {path}: HTTP {response.status}")
        return json.loads(body)

    def models(self) -> tuple[list[str], list[str]] | None:
        """The engine's base model names and its adapters' names in id order; None while it cannot say."""
        with Front.served_lock:
            if Front.served is None:
                try:
                    listing = self.engine_json("/v1/models")
                    loras = self.engine_json("/lora-adapters")
                    bases = [entry["id"] for entry in listing["data"]]
                    ordered = sorted(loras, key=lambda entry: entry["id"])
                    adapters = [posixpath.basename(posixpath.dirname(entry["path"])) for entry in ordered]
                except (OSError, ValueError, KeyError, TypeError):
                    return None  # not loaded yet: asked again on the next request
                Front.served = (bases, adapters)
            return Front.served

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        if self.path == "/v1/health/live":
            self.answer(200, "Service is live.")
        elif self.path == "/v1/health/ready":
            if self.engine_ready():
                self.answer(200, "Service is ready.")
            else:
                self.answer(503, "Service is not ready: the model is loading.")
        elif self.path == "/v1/models" and (served := self.models()) and served[1]:
            self.list_models(*served)
        else:
            self.forward(self.read_body())

    def do_POST(self) -> None:  # noqa: N802
        body = self.read_body()
        if self.path in COMPLETIONS and body and (served := self.models()):
            try:
                request = json.loads(body)
            except ValueError:
                request = None  # not ours to mend: the engine answers it
            if isinstance(request, dict) and isinstance(request.get("model"), str):
                bases, adapters = served
                model = request["model"]
                if model not in bases and model not in adapters:
                    self.answer_json(404, {"object": "error", "message": f"The model `{model}` does not exist.",
                                           "type": "NotFoundError", "param": None, "code": 404})
                    return
                if adapters:
                    if model in adapters:
                        request["model"] = bases[0]
                    request.setdefault("lora", [{"id": i, "scale": 1.0 if name == model else 0.0}
                                                for i, name in enumerate(adapters)])
                    body = json.dumps(request).encode()
        self.forward(body)

    def list_models(self, bases: list[str], adapters: list[str]) -> None:
        """NIM's /v1/models (OpenAI list objects): the base model, then each adapter, its parent the base."""
        created, base = int(time.time()), bases[0] if bases else None
        served = [(name, None) for name in bases] + [(name, base) for name in adapters]
        data = [{"id": name, "object": "model", "created": created, "owned_by": "system", "root": name,
                 "parent": parent} for name, parent in served]
        self.answer_json(200, {"object": "list", "data": data})

    def read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def forward(self, body: bytes | None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host", "content-length"}}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=600)
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
        except OSError as err:
            self.answer(503, f"Service is not ready: the engine does not answer ({err}).")
            return
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        while chunk := response.read1(65536):
            self.wfile.write(chunk)
            self.wfile.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--load-seconds", type=float, default=0.0)
    parser.add_argument("--upstream", type=int, help="front this engine's port instead of starting one")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = [word for word in args.command if word != "--"]
    Front.upstream = args.upstream or free_port()
    Front.ready_after = time.monotonic() + args.load_seconds
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Front)
    server.daemon_threads = True
    if args.upstream:
        print(f"[stand-in NIM] NIM's health routes on 127.0.0.1:{args.port} for the engine on {args.upstream}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.serve_forever()
        return 0
    engine = subprocess.Popen([word.replace("{upstream}", str(Front.upstream)) for word in command])
    print(f"[stand-in NIM] /v1/health/live and /v1/health/ready on 127.0.0.1:{args.port}, "
          f"engine on 127.0.0.1:{Front.upstream}, ready after it loads (+{args.load_seconds:g} s)", flush=True)

    def stop(signum: int, _frame: object) -> None:
        engine.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    code = engine.wait()
    server.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
