"""A local stand-in for Bombora's Company Surge file API (the shape assumed in bombora/api.py), over real HTTP.

- `Authorization: Basic <key>` required (401 otherwise).
- `GET /v2/Surge/GetMetaData` -> `{"Files": [{"FileId", "FileName", "Size", "Md5", "LastModified"}]}`.
- `GET /v2/Surge/DownloadFile?fileId=` -> the file's bytes (404 for an unknown id).
- `publish(name, data)` adds or replaces a file (a new MD5); `fail_next(path, [429, 500])` answers the next calls to
  `path` with those statuses (429 with `Retry-After: 0`); `calls` records (path, status).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class BomboraApiStandIn:
    def __init__(self, key: str = "bombora-test-key") -> None:
        self.key = key
        self.files: dict[str, dict[str, Any]] = {}
        self.forced: dict[str, deque[int]] = defaultdict(deque)
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> BomboraApiStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.forced.clear()
            self.calls.clear()

    def publish(self, name: str, data: bytes) -> str:
        file_id = hashlib.sha1(name.encode()).hexdigest()[:12]
        with self.lock:
            self.files[file_id] = {
                "FileId": file_id,
                "FileName": name,
                "Size": len(data),
                "Md5": hashlib.md5(data).hexdigest(),
                "LastModified": dt.datetime.now(dt.UTC).isoformat(),
                "data": data,
            }
        return file_id

    def fail_next(self, path: str, statuses: list[int]) -> None:
        with self.lock:
            self.forced[path].extend(statuses)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
                # Recorded before answering: once the client has the answer it may retry at once, and the retry's
                # handler thread must not record its call ahead of this one.
                stand_in.calls.append((urlparse(self.path).path, status))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(body).encode(), "application/json", headers)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                with stand_in.lock:
                    forced = stand_in.forced[url.path].popleft() if stand_in.forced[url.path] else None
                if forced is not None:
                    return self._json(
                        forced, {"error": f"forced {forced}"}, {"Retry-After": "0"} if forced == 429 else {}
                    )
                if self.headers.get("Authorization", "") != f"Basic {stand_in.key}":
                    return self._json(401, {"error": "invalid API key"})
                if url.path == "/v2/Surge/GetMetaData":
                    with stand_in.lock:
                        listed = [{k: v for k, v in f.items() if k != "data"} for f in stand_in.files.values()]
                    return self._json(200, {"Files": listed})
                if url.path == "/v2/Surge/DownloadFile":
                    file_id = parse_qs(url.query).get("fileId", [""])[0]
                    found = stand_in.files.get(file_id)
                    if found is None:
                        return self._json(404, {"error": "unknown file"})
                    return self._send(200, found["data"], "application/gzip")
                return self._json(404, {"error": "not found"})

        return Handler
