"""A fault-injecting HTTP proxy on loopback, in front of the real engine.

    proxy = FaultProxy(engine_root)              # forwards everything, unchanged
    proxy.inject("503", times=2, match="row 7")  # the next 2 requests whose body has "row 7" get a 503
    proxy.inject("slow", match="row 8", seconds=3)  # the next request with "row 8" is answered after 3 s

Faults: "401", "403", "404", "429" (with Retry-After), "500", "502", "503", "reset" (the connection is reset with no
response), "slow" (answers after `seconds`, SLOW_SECONDS unless given), "truncate" (a stream cut after a few events).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

SLOW_SECONDS = 20
TRUNCATE_AFTER_EVENTS = 3
STATUS_FAULTS = {"401": 401, "403": 403, "404": 404, "429": 429, "500": 500, "502": 502, "503": 503}


@dataclass
class Fault:
    kind: str
    times: int
    match: str | None
    seconds: float = SLOW_SECONDS


@dataclass
class Attempt:
    at: float
    body: str
    fault: str | None


@dataclass
class FaultProxy:
    upstream: str
    retry_after_seconds: int = 1
    faults: list[Fault] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    in_flight: int = 0  # chat completions being answered right now, and the most at once
    peak_in_flight: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, kind: str, times: int = 1, match: str | None = None, seconds: float = SLOW_SECONDS) -> None:
        with self._lock:
            self.faults.append(Fault(kind, times, match, seconds))

    def attempts_matching(self, text: str) -> list[Attempt]:
        return [a for a in self.attempts if text in a.body]

    def take_fault(self, body: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.match is None or fault.match in body):
                    fault.times -= 1
                    return fault
        return None

    def count_in(self, delta: int) -> None:
        with self._lock:
            self.in_flight += delta
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(proxy: FaultProxy):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            self._forward(b"", None)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            text = body.decode("utf-8", "replace")
            chat = "/chat/completions" in self.path
            fault = proxy.take_fault(text) if chat else None
            proxy.attempts.append(Attempt(time.monotonic(), text, fault.kind if fault else None))
            self.counted = int(chat)
            proxy.count_in(self.counted)
            try:
                self._answer(body, fault)
            finally:
                self.count_out()

        def count_out(self):
            proxy.count_in(-self.counted)
            self.counted = 0

        def _answer(self, body: bytes, fault: Fault | None):
            kind = fault.kind if fault else None
            if kind in STATUS_FAULTS:
                return self._status(STATUS_FAULTS[kind])
            if kind == "reset":
                return self._reset()
            if fault and kind == "slow":
                time.sleep(fault.seconds)
            self._forward(body, kind)

        def _status(self, status: int):
            payload = f'{{"error": {{"message": "injected {status}", "code": {status}}}}}'.encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", str(proxy.retry_after_seconds))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _reset(self):
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        def _forward(self, body: bytes, fault: str | None):
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            upstream = requests.request(
                self.command, proxy.upstream + self.path, data=body or None, headers=headers, stream=True, timeout=300
            )
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
            self.end_headers()  # HTTP/1.0: the body ends when the connection closes
            events = 0
            for line in upstream.iter_lines():
                if line == b"data: [DONE]":
                    # A streaming client is done at [DONE] and may send its next request before
                    # this connection closes: the request is no longer in flight.
                    self.count_out()
                self.wfile.write(line + b"\n")
                self.wfile.flush()
                events += line.startswith(b"data:")
                if fault == "truncate" and events == TRUNCATE_AFTER_EVENTS:
                    break
            upstream.close()

    return Handler
