"""Run an engine process and stop it when the process that owns it is gone.

    python -m nim_drum.guard OWNER_PID LOG_FILE -- COMMAND...

DRUM can die without running atexit handlers (SIGKILL, a crashed gunicorn worker), and the engine
outlives its parent. The guard polls the owner and stops the engine (SIGTERM, then SIGKILL), so no
engine is left orphaned. SIGTERM or SIGINT to the guard stops the engine the same way.
"""

import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.25
STOP_GRACE_SECONDS = 8


def owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(process: subprocess.Popen) -> int:
    process.terminate()
    try:
        return process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def main(argv: list[str]) -> int:
    owner_pid, log_file, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: python -m nim_drum.guard OWNER_PID LOG_FILE -- COMMAND...")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    with open(log_file, "ab", buffering=0) as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    while process.poll() is None:
        if stopping or not owner_alive(int(owner_pid)):
            return stop(process)
        time.sleep(POLL_SECONDS)
    return process.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
