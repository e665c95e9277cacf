"""Supervise an engine process: restart it when it dies, stop it when its owner is gone.

    python -m nim_drum.engines.guard OWNER_PID LOG_FILE HEALTH_URL -- COMMAND...

- The engine crashed: restart it on the same port, with a backoff, at most MAX_RESTARTS times.
  Requests in flight meanwhile fail with connection errors, which the scorer's client retries.
  An engine that exits before HEALTH_URL ever answered 200 is failing to start (a bad model file,
  a taken port, too little memory), which a restart will not mend: the guard exits, and the caller
  reports the engine's log. (A fixed uptime cannot tell the two apart: vLLM fails a start after
  30 s or more, llama-server crashes mid-batch after 3.)
- DRUM can die without running atexit handlers (SIGKILL, a crashed gunicorn worker), and an engine
  would outlive it. The guard polls the owner and stops the engine (SIGTERM, then SIGKILL).
- SIGTERM or SIGINT to the guard stops the engine the same way.
- A health probe that fails in any way (a refused connection, a malformed answer that raises
  http.client.HTTPException, anything else) counts as "not healthy": it never ends the guard.
"""

import signal
import subprocess
import sys
import time
import urllib.request

from nim_drum.processes import process_alive, stop_process

POLL_SECONDS = 0.25
STOP_GRACE_SECONDS = 8
MAX_RESTARTS = 5
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30


def answers(health_url: str) -> bool:
    try:
        with urllib.request.urlopen(health_url, timeout=1) as response:
            return response.status == 200
    except Exception:  # noqa: BLE001 - any failed probe means "not healthy", never the guard's end
        return False


def stop(process: subprocess.Popen) -> int:
    # The engine shares the guard's process group: signal the engine alone.
    stop_process(process.pid, STOP_GRACE_SECONDS, group=False)
    return process.wait()


def say(log, message: str) -> None:
    log.write(f"[nim_drum.engines.guard] {message}\n".encode())


def supervise(owner_pid: int, command: list[str], log, health_url: str) -> int:
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    restarts, backoff = 0, FIRST_BACKOFF_SECONDS
    while True:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        ready = False
        while process.poll() is None:
            if stopping or not process_alive(owner_pid):
                return stop(process)
            if not ready and answers(health_url):
                ready = True
                say(log, "engine is ready")
            time.sleep(POLL_SECONDS)
        if not ready:
            return process.returncode
        if restarts == MAX_RESTARTS:
            say(log, f"engine exited with code {process.returncode}; {MAX_RESTARTS} restarts used, giving up")
            return process.returncode
        restarts += 1
        code = process.returncode
        say(log, f"engine exited with code {code}; restart {restarts} of {MAX_RESTARTS} in {backoff:.1f} s")
        time.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


def main(argv: list[str]) -> int:
    owner_pid, log_file, health_url, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: python -m nim_drum.engines.guard OWNER_PID LOG_FILE HEALTH_URL -- COMMAND...")
    with open(log_file, "ab", buffering=0) as log:
        return supervise(int(owner_pid), command, log, health_url)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
