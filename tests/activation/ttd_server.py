"""A local stand-in for TTD's Data API `POST /data/advertiser` (reference 2.1-2.2), over real HTTP.

- `TTD-Auth: <token>` required (401 string otherwise); JSON `AdvertiserDataRequest` body.
- More than `max_items` items -> 413. `fail_next([429, ...])` answers the next calls with those statuses
  (429 carries `Retry-After: retry_after`).
- UID2s in `refuse` come back as FailedLines (`ErrorCode` "Uid2Error", 1-based `ItemNumber`), HTTP 200.
- `segments[name][uid2] = ttl` keeps what TTD holds (TTL 0 removes).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "ttd-token-Xk4"


class TtdStandIn:
    def __init__(self, *, max_items: int = 10_000, retry_after: int = 0) -> None:
        self.max_items = max_items
        self.retry_after = retry_after
        self.refuse: set[str] = set()
        self.forced: deque[int] = deque()
        self.segments: dict[str, dict[str, int]] = defaultdict(dict)
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> TtdStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.refuse.clear()
            self.forced.clear()
            self.segments.clear()
            self.requests.clear()
            self.statuses.clear()
            self.max_items = 10_000

    def fail_next(self, statuses: list[int]) -> None:
        self.forced.extend(statuses)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = (json.dumps(body) if not isinstance(body, str) else body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                stand_in.statuses.append(status)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/data/advertiser":
                    return self._send(404, "not found")
                if self.headers.get("TTD-Auth") != TOKEN:
                    return self._send(401, "Unauthorized")
                with stand_in.lock:
                    forced = stand_in.forced.popleft() if stand_in.forced else None
                if forced == 429:
                    return self._send(429, {"FailedLines": []}, {"Retry-After": str(stand_in.retry_after)})
                if forced:
                    return self._send(forced, "forced")
                body = json.loads(raw)
                items = body.get("Items") or []
                if len(items) > stand_in.max_items:
                    return self._send(413, "Request too large")
                failed = []
                with stand_in.lock:
                    stand_in.requests.append(body)
                    for n, item in enumerate(items, start=1):
                        uid2 = item.get("UID2")
                        (data,) = item["Data"]
                        if uid2 in stand_in.refuse:
                            failed.append({"TDID": None, "DataName": data["Name"], "ErrorCode": "Uid2Error",
                                           "Message": f"Invalid UID2, item #{n}", "ItemNumber": str(n),
                                           "DataNumber": "1"})  # fmt: skip
                            continue
                        if data["TtlInMinutes"] == 0:
                            stand_in.segments[data["Name"]].pop(uid2, None)
                        else:
                            stand_in.segments[data["Name"]][uid2] = data["TtlInMinutes"]
                return self._send(200, {"FailedLines": failed} if failed else {})

        return Handler
