"""The guard that supervises engine processes: a failing health probe never ends the supervision."""

import os
import signal
import socket
import subprocess
import sys
import threading

from helpers import REPO


class GarbageHealthServer:
    """Answers every connection with a line that is not HTTP: urllib raises http.client.BadStatusLine."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/health"
        self.probes = threading.Semaphore(0)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                connection.recv(4096)
                connection.sendall(b"NOT-HTTP garbage\r\n\r\n")
            self.probes.release()

    def close(self):
        self.sock.close()


def test_a_probe_that_raises_counts_as_unhealthy_and_the_guard_keeps_supervising(tmp_path):
    health = GarbageHealthServer()
    log, guard_output = tmp_path / "engine.log", tmp_path / "guard.out"
    engine = [sys.executable, "-c", "import time; time.sleep(600)"]
    with open(guard_output, "wb") as output:
        guard = subprocess.Popen(
            [sys.executable, "-m", "nim_drum.engines.guard", str(os.getpid()), str(log), health.url, "--", *engine],
            cwd=REPO, start_new_session=True, stdout=output, stderr=output,
        )
    try:
        for _ in range(4):  # the guard probes four times a second; each probe gets garbage
            assert health.probes.acquire(timeout=30), f"no health probe; guard said: {guard_output.read_text()}"
        assert guard.poll() is None, f"the guard ended: {guard_output.read_text()}"
    finally:
        os.killpg(guard.pid, signal.SIGTERM)  # the guard and, were it gone, its orphaned engine
        guard.wait(30)
        health.close()
    assert "Traceback" not in guard_output.read_text()
