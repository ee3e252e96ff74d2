"""A real paper engine observed by a real Observability, and real local HTTP servers
(a webhook receiver and a fake Telegram Bot API) for the metrics and alert tests."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pykka
from prometheus_client.parser import text_string_to_metric_families

from actors._system import Engine
from actors.config import Config
from actors.observe import Observability
from tests.engine_support import Harness
from tests.support import Recorder


@contextmanager
def observed(config: Config, env: Mapping[str, str] | None = None
             ) -> Iterator[tuple[Harness, Observability]]:
    """Observability built first, its listener given to a started engine (no feed, no
    strategies: the test sets prices), attached; everything stopped at the end."""
    obs = Observability(config, env={} if env is None else env)
    events = Recorder()
    try:
        engine = Engine(config, run_strategies=False, run_feed=False,
                        listeners=(obs.listener, events)).start()
        try:
            obs.attach(engine)
            yield Harness(engine, events), obs
        finally:
            engine.stop(drain=False)
    finally:
        obs.stop()
        pykka.ActorRegistry.stop_all()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and parse it: {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode("utf-8")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST (path, JSON body) and
    answers ``status`` with ``answer`` (JSON)."""

    def __init__(self, status: int = 200, answer: Any = None) -> None:
        self.posts = Recorder()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                receiver.posts.tell((self.path, body))
                data = json.dumps({"ok": True} if answer is None else answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def bodies(self, path: str | None = None) -> list[Any]:
        """Bodies posted (to ``path``, if given), in order."""
        return [body for p, body in self.posts.messages if path is None or p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
