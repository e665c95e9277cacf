"""The process's one EngineLimiter per engine, the level it learned, and the engine's own queue report.

The learned limit is kept in a small file beside the engines' state (the temporary directory), so
that a restarted DRUM (a new worker, a watchdog restart) starts from it rather than from the
default start level.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import requests

from nim_drum.config.settings import Settings
from nim_drum.serving.adaptive import DEFAULT_INITIAL, QUEUE_ALLOWANCE, AdaptiveLimit
from nim_drum.serving.limiter import EngineLimiter

log = logging.getLogger(__name__)

# Requests an engine holds back because its own batch is full (docs/engines.md, "Queue metrics"):
# NIM 1.x at /v1/metrics, vLLM and NIM 2.x (vLLM's, proxied) at /metrics, llama-server with --metrics.
QUEUE_GAUGES = ("num_requests_waiting", "vllm:num_requests_waiting", "llamacpp:requests_deferred")
QUEUE_LINE = re.compile(r"^(?P<name>[a-zA-Z_:]+)(\{[^}]*\})?\s+(?P<value>[0-9.eE+-]+)\s*$")
QUEUE_POLL_SECONDS = 2.0

_limiters: dict[tuple[str, str], EngineLimiter] = {}
_lock = threading.Lock()


def limiter_for(base_url: str, model: str, settings: Settings, engine_slots: int | None = None) -> EngineLimiter:
    """The engine's limiter: at most max_concurrency (and twice the engine's slots), adaptive unless turned off."""
    # A queue as long as the engine's slots keeps them busy between our requests (serving/adaptive.py).
    most = QUEUE_ALLOWANCE * engine_slots if engine_slots else settings.max_concurrency
    ceiling = min(settings.max_concurrency, most)
    key = (str(base_url).rstrip("/"), model)
    with _lock:
        limiter = _limiters.get(key)
        control = limiter.control if limiter else None
        if control is None or (control.ceiling, control.adaptive) != (ceiling, settings.adaptive_concurrency):
            start = learned_limit(key) or DEFAULT_INITIAL
            control = AdaptiveLimit(ceiling, initial=start, adaptive=settings.adaptive_concurrency)
            limiter = EngineLimiter(control, on_change=lambda limit: remember_limit(key, limit))
            QueueWatch(limiter, key[0]).start()
            _limiters[key] = limiter
            mode = "adaptive, up to" if control.adaptive else "fixed at"
            log.info("Concurrency for %s: %s %d requests in flight, starting at %d", model, mode, ceiling,
                     control.limit)
        return _limiters[key]


def learned_file() -> Path:
    return Path(tempfile.gettempdir()) / f"nim-drum-{os.getuid()}-learned-concurrency.json"


def learned_limit(key: tuple[str, str]) -> int | None:
    try:
        value = json.loads(learned_file().read_text()).get("|".join(key))
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def remember_limit(key: tuple[str, str], limit: int) -> None:
    path = learned_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    known = {**(known if isinstance(known, dict) else {}), "|".join(key): limit}
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(known))
        os.replace(temporary, path)
    except OSError as err:  # a read-only temporary directory costs only the memory across restarts
        log.debug("Could not keep the learned concurrency in %s: %s", path, err)


def queued_requests(metrics_text: str) -> int | None:
    """The requests an engine's Prometheus metrics report as waiting, or None when it reports none."""
    found = None
    for line in metrics_text.splitlines():
        match = QUEUE_LINE.match(line)
        if match and match["name"] in QUEUE_GAUGES:
            found = (found or 0) + int(float(match["value"]))
    return found


class QueueWatch(threading.Thread):
    """Reads the engine's queue gauge every few seconds while requests are in flight."""

    def __init__(self, limiter: EngineLimiter, base_url: str):
        super().__init__(daemon=True, name="engine-queue")
        self.limiter = limiter
        root = base_url.removesuffix("/v1")
        self.urls = [f"{base_url}/metrics", f"{root}/metrics"]

    def run(self) -> None:
        while self.urls:  # until the engine shows it reports no queue
            time.sleep(QUEUE_POLL_SECONDS)
            if self.limiter.in_flight:
                queued = self._read()
                if queued:
                    self.limiter.engine_queue(queued)

    def _read(self) -> int | None:
        for url in list(self.urls):
            try:
                response = requests.get(url, timeout=1)
            except requests.RequestException:
                return None
            queued = queued_requests(response.text) if response.status_code == 200 else None
            if queued is not None:
                self.urls = [url]
                return queued
            self.urls.remove(url)  # this engine does not report its queue there
        return None
