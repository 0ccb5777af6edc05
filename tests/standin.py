"""The scaffolding shared by the local HTTP stand-ins for third-party APIs used in tests.

A stand-in subclasses `StandIn` (server lifecycle, `base_url`, forced failures, the `calls` record, `reset`) and
names its request handler, a subclass of `StandInHandler` (quiet log, `_send`/`_json`), in `handler`.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

ANY_PATH = "*"  # the forced-failure queue of stand-ins whose failures hit whatever path comes next


class StandInHandler(BaseHTTPRequestHandler):
    stand_in: StandIn  # bound per server by StandIn.__init__

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        # Recorded before answering: once the client has the answer it may retry at once, and the retry's
        # handler thread must not record its call ahead of this one.
        self.stand_in.record(self, status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)


class StandIn:
    handler: type[StandInHandler]  # each stand-in's request handler
    base_path = ""  # appended to the server's root URL in `base_url`

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.forced: dict[str, deque[int]] = defaultdict(deque)
        self.calls: list[Any] = []
        handler = type(self.handler.__name__, (self.handler,), {"stand_in": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"  # bound to 127.0.0.1 above

    @property
    def base_url(self) -> str:
        return self.root_url + self.base_path

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.forced.clear()
            self.calls.clear()
            self.clear_state()

    def clear_state(self) -> None:
        """The stand-in's own state to forget on `reset` (called with the lock held)."""

    def fail_next(self, path: str, statuses: list[int]) -> None:
        """Answer the next calls to `path` with these statuses, in order."""
        with self.lock:
            self.forced[path].extend(statuses)

    def next_forced(self, path: str = ANY_PATH) -> int | None:
        """The forced status for this call to `path`, if one is queued (takes the lock)."""
        with self.lock:
            queue = self.forced.get(path)
            return queue.popleft() if queue else None

    def record(self, handler: StandInHandler, status: int) -> None:
        """Add the call being answered to `calls` (without the lock: a handler may hold it while answering)."""
        self.calls.append(self.call(handler, status))

    def call(self, handler: StandInHandler, status: int) -> Any:
        return (handler.command, handler.path, status)
