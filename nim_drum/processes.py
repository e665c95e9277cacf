"""Processes this package starts: whether one still runs, and stopping one (SIGTERM, wait, SIGKILL)."""

from __future__ import annotations

import os
import signal
import time

POLL_SECONDS = 0.1


def process_alive(pid: int) -> bool:
    """True while pid runs; reaps it first if it is an exited child of ours."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(pid: int, grace_seconds: float, group: bool = True) -> None:
    """SIGTERM to pid (to its whole process group when `group`), then SIGKILL if it outlives the grace."""
    send = os.killpg if group else os.kill
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        try:
            send(pid, signal_number)
        except ProcessLookupError:
            return
        if wait_for_exit(pid, grace_seconds):
            return


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True
