"""A local UID2 operator speaking the real `/v3/identity/map` wire format over HTTP (integrations.md 1.7-1.8).

- Bearer API key required (401 otherwise); the body is the encrypted envelope: version 0x01 | IV(12) |
  AES-256-GCM(timestamp_ms(8, BE) | nonce(8) | JSON) | tag(16), raw bytes when the request is
  `application/octet-stream` (the SDK's v3 mode), Base64 text otherwise.
- Timestamps more than 60 s away from now are refused (400 client_error), as the operator does.
- Answers are encrypted `IV | ciphertext | tag` of `timestamp | the same nonce | {"status","body"}`; each hash
  gets `{"u","p","r"}` (deterministic raw UID2) or `{"e": "optout" | "invalid identifier"}`.
- `fail_next([429, 500, ...])` answers the next requests with those statuses (429 without a body, with
  `Retry-After: retry_after`); `rotate()` changes every UID2 (salt-bucket rotation) with `p` the old one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import time
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.standin import ANY_PATH, StandIn, StandInHandler

API_KEY = "test-operator-key"
SECRET = base64.b64encode(bytes(range(32))).decode()
OPTOUT_EMAIL_HASH = base64.b64encode(hashlib.sha256(b"optout@example.com").digest()).decode()
OPTOUT_PHONE_HASH = base64.b64encode(hashlib.sha256(b"+00000000002").digest()).decode()


def raw_uid2(hashed: str, salt: int = 0) -> str:
    return base64.b64encode(hashlib.sha256(f"uid2:{salt}:{hashed}".encode()).digest()).decode()


class _Handler(StandInHandler):
    stand_in: Uid2Operator

    def _plain(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode() if body is not None else b"", "application/json", headers)

    def do_POST(self) -> None:
        operator = self.stand_in
        forced = operator.next_forced()
        with operator.lock:
            operator.requests += 1
            operator.in_flight += 1
            operator.max_in_flight = max(operator.max_in_flight, operator.in_flight)
        try:
            self._answer(forced)
        finally:
            with operator.lock:
                operator.in_flight -= 1

    def _answer(self, forced: int | None) -> None:
        operator = self.stand_in
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if operator.delay:
            time.sleep(operator.delay)
        if self.path != "/v3/identity/map":
            return self._plain(404, {"status": "unknown", "message": "not found"})
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._plain(401, {"status": "unauthorized", "message": "invalid api key"})
        if forced == 429:
            return self._plain(429, None, {"Retry-After": str(operator.retry_after)})
        if forced is not None:
            return self._plain(forced, {"status": "unknown", "message": "forced failure"})
        binary = self.headers.get("Content-Type") == "application/octet-stream"
        envelope = raw if binary else base64.b64decode(raw)
        if len(envelope) < 45:
            return self._plain(400, {"status": "client_error", "message": "Invalid body: too short"})
        if envelope[0] != 1:
            msg = f"Invalid body: Invalid request envelope format version: received {envelope[0]}, must be 1."
            return self._plain(400, {"status": "client_error", "message": msg})
        try:
            plain = AESGCM(operator.key).decrypt(envelope[1:13], envelope[13:], None)
        except Exception:
            msg = "Invalid body: Check encryption key (ClientSecret)."
            return self._plain(400, {"status": "client_error", "message": msg})
        (ts_ms,) = struct.unpack(">q", plain[:8])
        nonce = plain[8:16]
        if abs(ts_ms - time.time() * 1000) > 60_000:
            msg = "Invalid timestamp: Request too old or client time drift."
            return self._plain(400, {"status": "client_error", "message": msg})
        try:
            request = json.loads(plain[16:])
        except ValueError:
            msg = "Invalid payload in body: Data is not valid json string."
            return self._plain(400, {"status": "client_error", "message": msg})
        keys = ("email", "email_hash", "phone", "phone_hash")
        if not any(request.get(k) for k in keys):
            msg = "Required Parameter Missing: one or more of [email, email_hash, phone, phone_hash] must be specified"
            return self._plain(400, {"status": "client_error", "message": msg})
        body = {k: [operator.identity(h) for h in request.get(k) or []] for k in keys}
        with operator.lock:
            operator.items += sum(len(v) for v in body.values())
        answer = json.dumps({"status": "success", "body": body}).encode()
        payload = struct.pack(">q", int(time.time() * 1000)) + nonce + answer
        iv = os.urandom(12)
        out = iv + AESGCM(operator.key).encrypt(iv, payload, None)
        if not binary:
            out = base64.b64encode(out)
        self._send(200, out, "application/octet-stream" if binary else "text/plain")


class Uid2Operator(StandIn):
    handler = _Handler

    def __init__(self, *, refresh_seconds: int = 86_400, retry_after: int = 0) -> None:
        super().__init__()
        self.key = base64.b64decode(SECRET)
        self.refresh_seconds = refresh_seconds
        self.retry_after = retry_after
        self.optouts = {OPTOUT_EMAIL_HASH, OPTOUT_PHONE_HASH}
        self.salt = 0
        self.rotated: set[str] = set()
        self.requests = 0
        self.items = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls: list[int] = []  # the status of each answer
        self.delay = 0.0

    @property
    def statuses(self) -> list[int]:
        return self.calls

    def clear_state(self) -> None:
        self.requests = self.items = self.max_in_flight = 0
        self.salt = 0
        self.rotated.clear()
        self.delay = 0.0
        self.optouts = {OPTOUT_EMAIL_HASH, OPTOUT_PHONE_HASH}

    def call(self, handler: StandInHandler, status: int) -> int:
        return status

    def fail_next(self, statuses: list[int]) -> None:  # type: ignore[override]  # whatever the path
        super().fail_next(ANY_PATH, statuses)

    def rotate(self) -> None:
        with self.lock:
            self.salt += 1

    def identity(self, hashed: str) -> dict[str, Any]:
        if len(hashed) != 44:
            return {"e": "invalid identifier"}
        if hashed in self.optouts:
            return {"e": "optout"}
        previous = raw_uid2(hashed, self.salt - 1) if self.salt else None
        return {"u": raw_uid2(hashed, self.salt), "p": previous, "r": int(time.time()) + self.refresh_seconds}
