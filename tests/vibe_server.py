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
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.standin import StandIn, StandInHandler

PREFIX = "/rest/reporting/v1"
CSV_HEADER = "date,campaign_name,strategy_name,placement_name,creative_name,impressions,clicks,conversions,revenue"


def default_data(advertiser_id: str, day: str) -> str:
    rows = [
        f"{day},CTV Launch,Prime time,Hulu,Spot A,12000,30,3,150.00",
        f"{day},CTV Launch,Prime time,Roku,Spot A,8000,12,1,49.50",
        f'{day},CTV Launch,Sports,ESPN,Spot B,"1,500",4,0,0',
    ]
    return "\n".join([CSV_HEADER, *rows]) + "\n"


class _Handler(StandInHandler):
    stand_in: VibeStandIn

    def _route(self) -> None:
        if self.stand_in.delay:
            time.sleep(self.stand_in.delay)
        url = urlparse(self.path)
        path = url.path.removeprefix(PREFIX)
        forced = self.stand_in.next_forced(path)
        if forced is not None:
            headers = {"Retry-After": str(self.stand_in.retry_after)} if forced == 429 else {}
            return self._json(forced, {"error": f"forced {forced}"}, headers)
        if path.startswith("/download/"):
            report = self.stand_in.reports.get(path.rsplit("/", 1)[-1])
            if report is None or parse_qs(url.query).get("token", [""])[0] != report["token"]:
                return self._json(404, {"error": "unknown or expired download link"})
            csv = self.stand_in.data(report["advertiser_id"], report["start_date"])
            return self._send(200, csv.encode(), "text/csv")
        key = self.headers.get("X-API-KEY", "")
        if key not in self.stand_in.keys:
            return self._json(403, {"error": "invalid API key"})
        if path == "/create_async_report" and self.command == "POST":
            return self._create(key)
        if path == "/get_report_status" and self.command == "GET":
            return self._status(key, parse_qs(url.query).get("report_id", [""])[0])
        if path == "/get_advertiser_ids" and self.command == "GET":
            return self._json(200, {"advertiser_ids": sorted(self.stand_in.keys[key])})
        return self._json(404, {"error": "not found"})

    def _create(self, key: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            start = dt.date.fromisoformat(body["start_date"]).isoformat()
            dt.date.fromisoformat(body["end_date"])
        except (ValueError, KeyError, TypeError):
            return self._json(422, {"error": "start_date and end_date (YYYY-MM-DD) are required"})
        if body.get("advertiser_id") not in self.stand_in.keys[key]:
            return self._json(403, {"error": "advertiser not accessible with this key"})
        now = time.time()
        with self.stand_in.lock:
            window = self.stand_in.creations[key]
            while window and window[0] <= now - 3600:
                window.popleft()
            left = self.stand_in.creates_per_hour - len(window)
            if left <= 0:
                retry = int(window[0] + 3600 - now) + 1
                headers = {
                    "Retry-After": str(retry),
                    "x-rate-limit": str(self.stand_in.creates_per_hour),
                    "x-rate-limit-left": "0",
                    "x-rate-limit-retry-after": str(retry),
                }
                return self._json(429, {"error": "rate limit exceeded"}, headers)
            window.append(now)
            report_id = uuid.uuid4().hex
            self.stand_in.reports[report_id] = {
                "key": key,
                "advertiser_id": body["advertiser_id"],
                "start_date": start,
                "created": now,
                "token": uuid.uuid4().hex,
            }
        headers = {"x-rate-limit": str(self.stand_in.creates_per_hour), "x-rate-limit-left": str(left - 1)}
        return self._json(200, {"report_id": report_id, "status": "created"}, headers)

    def _status(self, key: str, report_id: str) -> None:
        report = self.stand_in.reports.get(report_id)
        if report is None or report["key"] != key:
            return self._json(404, {"error": "unknown report"})
        ready = not self.stand_in.never_finish and time.time() - report["created"] >= self.stand_in.ready_after
        if not ready:
            return self._json(200, {"report_id": report_id, "status": "processing"})
        url = f"{self.stand_in.root_url}/download/{report_id}?token={report['token']}"
        return self._json(200, {"report_id": report_id, "status": "done", "download_url": url})

    do_GET = _route
    do_POST = _route


class VibeStandIn(StandIn):
    handler = _Handler
    base_path = PREFIX

    def __init__(
        self,
        keys: dict[str, set[str]],
        *,
        creates_per_hour: int = 15,
        ready_after: float = 0.0,
        retry_after: int = 1,
        data: Callable[[str, str], str] = default_data,
    ) -> None:
        super().__init__()
        self.keys = keys
        self.creates_per_hour = creates_per_hour
        self.ready_after = ready_after
        self.retry_after = retry_after
        self.data = data
        self.never_finish = False
        self.delay = 0.0
        self.reports: dict[str, dict[str, Any]] = {}
        self.creations: dict[str, deque[float]] = defaultdict(deque)
        self.calls: list[tuple[str, str, int, str]] = []  # (method, path, status, api key)

    def clear_state(self) -> None:
        self.reports.clear()
        self.creations.clear()
        self.never_finish = False
        self.delay = 0.0

    def call(self, handler: StandInHandler, status: int) -> tuple[str, str, int, str]:
        path = urlparse(handler.path).path.removeprefix(PREFIX)
        return (handler.command, path, status, handler.headers.get("X-API-KEY", ""))
