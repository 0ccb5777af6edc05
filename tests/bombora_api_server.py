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
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.standin import StandIn, StandInHandler


class _Handler(StandInHandler):
    stand_in: BomboraApiStandIn

    def do_GET(self) -> None:
        url = urlparse(self.path)
        forced = self.stand_in.next_forced(url.path)
        if forced is not None:
            return self._json(forced, {"error": f"forced {forced}"}, {"Retry-After": "0"} if forced == 429 else {})
        if self.headers.get("Authorization", "") != f"Basic {self.stand_in.key}":
            return self._json(401, {"error": "invalid API key"})
        if url.path == "/v2/Surge/GetMetaData":
            with self.stand_in.lock:
                listed = [{k: v for k, v in f.items() if k != "data"} for f in self.stand_in.files.values()]
            return self._json(200, {"Files": listed})
        if url.path == "/v2/Surge/DownloadFile":
            file_id = parse_qs(url.query).get("fileId", [""])[0]
            found = self.stand_in.files.get(file_id)
            if found is None:
                return self._json(404, {"error": "unknown file"})
            return self._send(200, found["data"], "application/gzip")
        return self._json(404, {"error": "not found"})


class BomboraApiStandIn(StandIn):
    handler = _Handler

    def __init__(self, key: str = "bombora-test-key") -> None:
        super().__init__()
        self.key = key
        self.files: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, int]] = []  # (path, status)

    def clear_state(self) -> None:
        self.files.clear()

    def call(self, handler: StandInHandler, status: int) -> tuple[str, int]:
        return (urlparse(handler.path).path, status)

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
