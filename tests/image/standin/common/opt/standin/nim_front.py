"""NIM's health routes in front of a real engine, for the stand-in NIMs and the sidecar tests (tests only, NOT NIM).

    python3 nim_front.py --port PORT [--load-seconds N] -- ENGINE_COMMAND ... {upstream} ...
    python3 nim_front.py --port PORT --upstream ENGINE_PORT      (an engine that already runs)

NIM serves `/v1/health/live` (200 as soon as the process runs) and `/v1/health/ready` (503 until
the model is loaded, then 200). llama-server has neither, only `/health`. This front listens on
127.0.0.1:PORT, starts the engine as its child on a free port (`{upstream}` in the command), answers
the two routes itself and passes every other request through, streamed. Ready means: the engine's
`/health` answers 200 and, to stand in for a large model's load, --load-seconds have passed since
start. It exits with the engine it started, and stops that engine on SIGTERM. Python's standard library only: it
runs on the stand-ins' own python3 and on the host.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Front(BaseHTTPRequestHandler):
    upstream = 0
    ready_after = 0.0

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass

    def answer(self, status: int, message: str) -> None:
        body = json.dumps({"object": "health-response", "message": message}).encode()
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

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        if self.path == "/v1/health/live":
            self.answer(200, "Service is live.")
        elif self.path == "/v1/health/ready":
            if self.engine_ready():
                self.answer(200, "Service is ready.")
            else:
                self.answer(503, "Service is not ready: the model is loading.")
        else:
            self.forward()

    def do_POST(self) -> None:  # noqa: N802
        self.forward()

    def forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
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
