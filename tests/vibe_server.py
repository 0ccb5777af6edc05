"""A local stand-in for Vibe's async reporting API, speaking its wire format over real HTTP.

- `X-API-KEY` required (403 otherwise); each key sees its own advertiser ids.
- `POST /create_async_report` (JSON) -> `{"report_id", "status": "created"}`; 15 creations per hour
  per key, then 429 with `Retry-After` and the `x-rate-limit*` headers.
- `GET /get_report_status?report_id=` -> `{"status": "processing" | "done", "download_url"}`, done
  after `ready_after` seconds (never with `never_finish`).
- `GET /download/<id>` -> the CSV (`date, campaign_name, ..., revenue`) from `data(advertiser, day)`.
- Failure modes on demand: `fail_next(path, [429, 500, ...])` answers the next calls to `path` with
  those statuses (429s carry `Retry-After: retry_after`); `delay` slows every answer.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

CSV_HEADER = "date,campaign_name,strategy_name,placement_name,creative_name,impressions,clicks,conversions,revenue"


def default_data(advertiser_id: str, day: str) -> str:
    rows = [
        f"{day},CTV Launch,Prime time,Hulu,Spot A,12000,30,3,150.00",
        f"{day},CTV Launch,Prime time,Roku,Spot A,8000,12,1,49.50",
        f'{day},CTV Launch,Sports,ESPN,Spot B,"1,500",4,0,0',
    ]
    return "\n".join([CSV_HEADER, *rows]) + "\n"


class VibeStandIn:
    def __init__(
        self,
        keys: dict[str, set[str]],
        *,
        creates_per_hour: int = 15,
        ready_after: float = 0.0,
        retry_after: int = 1,
        data: Callable[[str, str], str] = default_data,
    ) -> None:
        self.keys = keys
        self.creates_per_hour = creates_per_hour
        self.ready_after = ready_after
        self.retry_after = retry_after
        self.data = data
        self.never_finish = False
        self.delay = 0.0
        self.reports: dict[str, dict[str, Any]] = {}
        self.creations: dict[str, deque[float]] = defaultdict(deque)
        self.forced: dict[str, deque[int]] = defaultdict(deque)
        self.calls: list[tuple[str, str, int, str]] = []  # (method, path, status, api key)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/rest/reporting/v1"

    def start(self) -> VibeStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.reports.clear()
            self.creations.clear()
            self.forced.clear()
            self.calls.clear()
            self.never_finish = False
            self.delay = 0.0

    def fail_next(self, path: str, statuses: list[int]) -> None:
        with self.lock:
            self.forced[path].extend(statuses)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, csv: bool = False) -> None:
                payload = body.encode() if csv else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/csv" if csv else "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)
                path = urlparse(self.path).path.removeprefix("/rest/reporting/v1")
                stand_in.calls.append((self.command, path, status, self.headers.get("X-API-KEY", "")))

            def _route(self) -> None:
                if stand_in.delay:
                    time.sleep(stand_in.delay)
                url = urlparse(self.path)
                path = url.path.removeprefix("/rest/reporting/v1")
                with stand_in.lock:
                    forced = stand_in.forced[path].popleft() if stand_in.forced[path] else None
                if forced is not None:
                    headers = {"Retry-After": str(stand_in.retry_after)} if forced == 429 else {}
                    return self._send(forced, {"error": f"forced {forced}"}, headers)
                if path.startswith("/download/"):
                    report = stand_in.reports.get(path.rsplit("/", 1)[-1])
                    if report is None or parse_qs(url.query).get("token", [""])[0] != report["token"]:
                        return self._send(404, {"error": "unknown or expired download link"})
                    return self._send(200, stand_in.data(report["advertiser_id"], report["start_date"]), csv=True)
                key = self.headers.get("X-API-KEY", "")
                if key not in stand_in.keys:
                    return self._send(403, {"error": "invalid API key"})
                if path == "/create_async_report" and self.command == "POST":
                    return self._create(key)
                if path == "/get_report_status" and self.command == "GET":
                    return self._status(key, parse_qs(url.query).get("report_id", [""])[0])
                if path == "/get_advertiser_ids" and self.command == "GET":
                    return self._send(200, {"advertiser_ids": sorted(stand_in.keys[key])})
                return self._send(404, {"error": "not found"})

            def _create(self, key: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    start = dt.date.fromisoformat(body["start_date"]).isoformat()
                    dt.date.fromisoformat(body["end_date"])
                except (ValueError, KeyError, TypeError):
                    return self._send(422, {"error": "start_date and end_date (YYYY-MM-DD) are required"})
                if body.get("advertiser_id") not in stand_in.keys[key]:
                    return self._send(403, {"error": "advertiser not accessible with this key"})
                now = time.time()
                with stand_in.lock:
                    window = stand_in.creations[key]
                    while window and window[0] <= now - 3600:
                        window.popleft()
                    left = stand_in.creates_per_hour - len(window)
                    if left <= 0:
                        retry = int(window[0] + 3600 - now) + 1
                        headers = {
                            "Retry-After": str(retry),
                            "x-rate-limit": str(stand_in.creates_per_hour),
                            "x-rate-limit-left": "0",
                            "x-rate-limit-retry-after": str(retry),
                        }
                        return self._send(429, {"error": "rate limit exceeded"}, headers)
                    window.append(now)
                    report_id = uuid.uuid4().hex
                    stand_in.reports[report_id] = {
                        "key": key,
                        "advertiser_id": body["advertiser_id"],
                        "start_date": start,
                        "created": now,
                        "token": uuid.uuid4().hex,
                    }
                headers = {"x-rate-limit": str(stand_in.creates_per_hour), "x-rate-limit-left": str(left - 1)}
                return self._send(200, {"report_id": report_id, "status": "created"}, headers)

            def _status(self, key: str, report_id: str) -> None:
                report = stand_in.reports.get(report_id)
                if report is None or report["key"] != key:
                    return self._send(404, {"error": "unknown report"})
                ready = not stand_in.never_finish and time.time() - report["created"] >= stand_in.ready_after
                if not ready:
                    return self._send(200, {"report_id": report_id, "status": "processing"})
                host, port = stand_in.server.server_address[:2]
                url = f"http://{host}:{port}/download/{report_id}?token={report['token']}"
                return self._send(200, {"report_id": report_id, "status": "done", "download_url": url})

            do_GET = _route
            do_POST = _route

        return Handler
