"""A client for Bombora's Company Surge file API (httpx): list the delivered files, download one.

Bombora's current API is gated (integrations.md 4.3); the shape here follows the legacy Surge API
(`https://sentry.bombora.com`, `Authorization: Basic <api key>`, `/v2/Surge/...`) and is an ASSUMPTION to
re-check against the contract Bombora gives a customer:

- `GET /v2/Surge/GetMetaData` -> `{"Files": [{"FileId", "FileName", "Size", "Md5", "LastModified"}]}`
- `GET /v2/Surge/DownloadFile?fileId=<id>` -> the file's bytes (a gzipped Master Surge / ADAT CSV)

Errors: 401/403 (bad key: no retry), 429 (rate limit: wait `Retry-After`, then retry), 5xx and network errors
(retried with exponential backoff). Requests are spaced by at least `min_interval` seconds (quota).
Configuration: P360_BOMBORA_API_URL (empty: no API pickup), P360_BOMBORA_API_KEY, P360_BOMBORA_API_TIMEOUT,
P360_BOMBORA_API_RETRIES, P360_BOMBORA_API_MIN_INTERVAL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

MAX_WAIT_SECONDS = 60.0  # a Retry-After longer than this is not waited for inside one task


class BomboraApiError(Exception):
    """The API refused or kept failing; `status` is the last HTTP status (None for network errors)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RemoteFile:
    id: str
    name: str
    size: int | None
    md5: str
    modified: str


class BomboraApi:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        retries: int = 4,
        min_interval: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = max(0, retries)
        self.min_interval = max(0.0, min_interval)
        self.sleep = sleep
        self._last = 0.0
        self._lock = threading.Lock()
        self.client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Basic {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> BomboraApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _space(self) -> None:
        with self._lock:
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0:
                self.sleep(wait)
            self._last = time.monotonic()

    def _send(self, path: str, params: dict[str, str] | None = None, *, target: Path | None = None) -> Any:
        """GET with retries; JSON (or the bytes written to `target`, returning their count)."""
        last_error = "no attempt"
        status: int | None = None
        for attempt in range(self.retries + 1):
            self._space()
            try:
                with self.client.stream("GET", path, params=params) as response:
                    status = response.status_code
                    if status in (401, 403):
                        raise BomboraApiError(f"Bombora API refused the key ({status}) on {path}", status)
                    if status == 429 or status >= 500:
                        last_error = f"HTTP {status} on {path}"
                        retry_after = response.headers.get("Retry-After", "")
                        delay = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 2.0**attempt
                        if attempt < self.retries:
                            self.sleep(min(delay, MAX_WAIT_SECONDS))
                        continue
                    if status != 200:
                        raise BomboraApiError(f"Bombora API answered HTTP {status} on {path}", status)
                    if target is None:
                        response.read()
                        try:
                            return response.json()
                        except ValueError as exc:
                            raise BomboraApiError(f"Bombora API sent invalid JSON on {path}", status) from exc
                    written = 0
                    with target.open("wb") as handle:
                        for chunk in response.iter_bytes(1 << 20):
                            handle.write(chunk)
                            written += len(chunk)
                    expected = response.headers.get("Content-Length")
                    if expected and expected.isdigit() and int(expected) != written:
                        last_error = f"truncated download on {path} ({written} of {expected} bytes)"
                        continue
                    return written
            except httpx.HTTPError as exc:  # connection refused, timeouts, protocol errors: transient
                last_error = f"{type(exc).__name__} on {path}: {exc}"
                status = None
                if attempt < self.retries:
                    self.sleep(min(2.0**attempt, MAX_WAIT_SECONDS))
        raise BomboraApiError(f"Bombora API failed after {self.retries + 1} attempts: {last_error}", status)

    def files(self) -> list[RemoteFile]:
        """The files Bombora offers, oldest name first (names carry the week's date)."""
        body = self._send("/v2/Surge/GetMetaData")
        items = body.get("Files") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise BomboraApiError("Bombora API metadata has no Files list")
        found = []
        for item in items:
            if not isinstance(item, dict) or not item.get("FileId") or not item.get("FileName"):
                continue  # a malformed entry is skipped, not fatal: the others still load
            size = item.get("Size")
            found.append(
                RemoteFile(
                    id=str(item["FileId"])[:200],
                    name=Path(str(item["FileName"])).name[:255],
                    size=int(size) if isinstance(size, int) else None,
                    md5=str(item.get("Md5") or "")[:64],
                    modified=str(item.get("LastModified") or "")[:40],
                )
            )
        return sorted(found, key=lambda f: (f.name, f.id))

    def download(self, file_id: str, target: Path) -> int:
        return int(self._send("/v2/Surge/DownloadFile", {"fileId": file_id}, target=target))


def configured() -> bool:
    return bool(getattr(settings, "P360_BOMBORA_API_URL", ""))


def client_from_settings(**overrides: Any) -> BomboraApi:
    return BomboraApi(
        settings.P360_BOMBORA_API_URL,
        settings.P360_BOMBORA_API_KEY or "",
        timeout=float(getattr(settings, "P360_BOMBORA_API_TIMEOUT", 60)),
        retries=int(getattr(settings, "P360_BOMBORA_API_RETRIES", 4)),
        min_interval=float(getattr(settings, "P360_BOMBORA_API_MIN_INTERVAL", 0.2)),
        **overrides,
    )
