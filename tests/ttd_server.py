"""A local stand-in for TTD's REST API v3 campaign and ad group endpoints, over real HTTP.

`TTD-Auth` required (401 otherwise). `POST /v3/campaign|adgroup` creates (returns the object with its
`CampaignId`/`AdGroupId`), `PUT` replaces, `GET /v3/campaign/<id>` reads. `fail_next(n, status)` answers
the next n calls with that status; `calls` records (method, path)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class TtdStandIn:
    def __init__(self, token: str = "ttd-token") -> None:
        self.token = token
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"campaign": {}, "adgroup": {}}
        self.calls: list[tuple[str, str]] = []
        self.failures: list[int] = []
        self.lock = threading.Lock()
        self.counter = 1000
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v3"

    def start(self) -> TtdStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.objects = {"campaign": {}, "adgroup": {}}
            self.calls.clear()
            self.failures.clear()

    def fail_next(self, n: int, status: int = 503) -> None:
        self.failures.extend([status] * n)

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "GET"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with stand_in.lock:
                    stand_in.calls.append((method, self.path))
                    if stand_in.failures:
                        self._send(stand_in.failures.pop(0), {"Message": "try again"})
                        return
                    if self.headers.get("TTD-Auth") != stand_in.token:
                        self._send(401, {"Message": "unauthorised"})
                        return
                    parts = self.path.strip("/").split("/")  # v3, kind[, id]
                    kind = parts[1] if len(parts) > 1 else ""
                    if kind not in stand_in.objects:
                        self._send(404, {"Message": "no such endpoint"})
                        return
                    store = stand_in.objects[kind]
                    id_field = "CampaignId" if kind == "campaign" else "AdGroupId"
                    if method == "GET":
                        obj = store.get(parts[2]) if len(parts) > 2 else None
                        self._send(200 if obj else 404, obj or {"Message": "not found"})
                    elif method == "POST":
                        stand_in.counter += 1
                        new_id = f"{kind[:2]}{stand_in.counter}"
                        store[new_id] = {**body, id_field: new_id}
                        self._send(200, store[new_id])
                    else:
                        obj_id = body.get(id_field, "")
                        if obj_id not in store:
                            self._send(404, {"Message": "not found"})
                            return
                        store[obj_id] = dict(body)
                        self._send(200, store[obj_id])

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

        return Handler
