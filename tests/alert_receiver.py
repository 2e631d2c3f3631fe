"""A local HTTP receiver for the operator's alert webhooks (Alertmanager's webhook format): every
POST body it got, in order. It listens on 127.0.0.1 over http, which the operator's outbound guard
refuses unless FINOPS_ALERT_ALLOW_PRIVATE_URLS is true (docs/SECURITY.md)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class AlertReceiver:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def alert_receiver() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
