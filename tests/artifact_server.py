"""A real HTTP file server for the artifact tests: Range, If-Range, ETag, counts, and drops on demand.

    python tests/artifact_server.py FOLDER PORT    serve FOLDER (used to measure against curl)
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHUNK = 1024 * 1024


@contextmanager
def s3_server(bucket: str, secret_key: str):
    """An S3-compatible server on loopback (moto in server mode): yields (boto3 client, endpoint URL)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="AKIDTEST", aws_secret_access_key=secret_key)
        client.create_bucket(Bucket=bucket)
        yield client, endpoint
    finally:
        server.stop()


class ArtifactServer:
    """Serves the files of one folder on 127.0.0.1; tests read what it was asked and what it sent."""

    def __init__(self, root: Path, port: int = 0):
        self.root = root
        self.requests: list[dict] = []  # method, path, headers, bytes sent
        self.drops: list[int] = []  # for the next GETs: bytes to send before dropping the connection
        self.failures: list[int] = []  # for the next GETs: a status to answer instead (503, ...)
        self.bytes_per_second: float | None = None
        self.hold: threading.Event | None = None  # when set, GETs of files wait for it before sending
        self.token: str | None = None  # when set, a Bearer token every request must carry
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ArtifactServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def gets(self, name: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "GET" and r["path"] == f"/{name}"]

    def bytes_sent(self, name: str) -> int:
        return sum(r["sent"] for r in self.gets(name))


def _handler(server: ArtifactServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _serve(self, body: bool):
            path = unquote(urlsplit(self.path).path)
            record = {"method": self.command, "path": path, "headers": dict(self.headers), "sent": 0}
            file = server.root / path.lstrip("/")
            with server.lock:
                server.requests.append(record)
                # Drops and failures apply to the GETs of files that exist (not .sha256 probes).
                failure = server.failures.pop(0) if body and file.is_file() and server.failures else None
                drop = server.drops.pop(0) if body and file.is_file() and server.drops else None
            if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                return self._empty(401)
            if not file.is_file():
                return self._empty(404)
            if failure:
                return self._empty(failure)
            size, etag = file.stat().st_size, f'"{file.stat().st_size}-{file.stat().st_mtime_ns}"'
            start = self._range_start(etag)
            if start >= size and start:
                return self._empty(416)
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Length", str(size - start))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if body:
                self._send_file(file, start, drop, record)

        def _range_start(self, etag: str) -> int:
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if_range = self.headers.get("If-Range")
            return int(match.group(1)) if match and (not if_range or if_range == etag) else 0

        def _send_file(self, file: Path, start: int, drop: int | None, record: dict):
            if server.hold:
                server.hold.wait(120)
            size = CHUNK // 16 if server.bytes_per_second else CHUNK
            with open(file, "rb") as source:
                source.seek(start)
                while chunk := source.read(size if drop is None else min(size, drop - record["sent"])):
                    self.wfile.write(chunk)
                    record["sent"] += len(chunk)
                    if server.bytes_per_second:
                        time.sleep(len(chunk) / server.bytes_per_second)
                    if drop is not None and record["sent"] >= drop:
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return

        def _empty(self, status: int):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


if __name__ == "__main__":
    ArtifactServer(Path(sys.argv[1]), int(sys.argv[2])).httpd.serve_forever()
