"""A local stand-in for TTD's Data API `POST /data/advertiser` (reference 2.1-2.2), over real HTTP.

- `TTD-Auth: <token>`, or `TtdSignature: base64(HMAC-SHA1(advertiser secret key, the exact body bytes))` as
  TTD's integrators sign (reference 2.1), required (401 string otherwise); JSON `AdvertiserDataRequest` body.
  `auths` records which of the two each accepted request used.
- More than `max_items` items -> 413. `fail_next([429, ...])` answers the next calls with those statuses
  (429 carries `Retry-After: retry_after`).
- UID2s in `refuse` come back as FailedLines (`ErrorCode` "Uid2Error", 1-based `ItemNumber`), HTTP 200.
- `segments[name][uid2] = ttl` keeps what TTD holds (TTL 0 removes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import defaultdict
from typing import Any

from tests.standin import ANY_PATH, StandIn, StandInHandler

TOKEN = "ttd-token-Xk4"
SECRET_KEY = "ttd-advertiser-secret-Qm7"


def signature(secret: str, body: bytes) -> str:
    """What TTD expects in `TtdSignature`: the Base64 HMAC-SHA1 of the raw request body under the secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


class _Handler(StandInHandler):
    stand_in: TtdStandIn

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        # TTD answers some errors with a bare string under the JSON content type.
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self._send(status, data, "application/json", headers)

    def do_POST(self) -> None:
        stand_in = self.stand_in
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/data/advertiser":
            return self._answer(404, "not found")
        signed = self.headers.get("TtdSignature")
        if self.headers.get("TTD-Auth") == TOKEN:
            auth = "TTD-Auth"
        elif signed and hmac.compare_digest(signed, signature(SECRET_KEY, raw)):
            auth = "TtdSignature"
        else:
            return self._answer(401, "Unauthorized")
        forced = stand_in.next_forced()
        if forced == 429:
            return self._answer(429, {"FailedLines": []}, {"Retry-After": str(stand_in.retry_after)})
        if forced:
            return self._answer(forced, "forced")
        body = json.loads(raw)
        items = body.get("Items") or []
        if len(items) > stand_in.max_items:
            return self._answer(413, "Request too large")
        failed = []
        with stand_in.lock:
            stand_in.requests.append(body)
            stand_in.auths.append(auth)
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
        failed += stand_in.odd_failed_lines  # entries a broken answer may carry (strings, numbers)
        return self._answer(200, {"FailedLines": failed} if failed else {})


class TtdStandIn(StandIn):
    handler = _Handler

    def __init__(self, *, max_items: int = 10_000, retry_after: int = 0) -> None:
        super().__init__()
        self.max_items = max_items
        self.retry_after = retry_after
        self.refuse: set[str] = set()
        self.odd_failed_lines: list[Any] = []
        self.segments: dict[str, dict[str, int]] = defaultdict(dict)
        self.requests: list[dict[str, Any]] = []
        self.auths: list[str] = []
        self.calls: list[int] = []  # the status of each answer

    @property
    def statuses(self) -> list[int]:
        return self.calls

    def clear_state(self) -> None:
        self.refuse.clear()
        self.odd_failed_lines = []
        self.segments.clear()
        self.requests.clear()
        self.auths.clear()
        self.max_items = 10_000

    def call(self, handler: StandInHandler, status: int) -> int:
        return status

    def fail_next(self, statuses: list[int]) -> None:  # type: ignore[override]  # whatever the path
        super().fail_next(ANY_PATH, statuses)
