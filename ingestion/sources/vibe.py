"""Vibe (CTV) async reporting API: create a report, poll its status, download the CSV.

Wire format (integrations.md section 6): base `.../rest/reporting/v1`, header `X-API-KEY`,
`POST /create_async_report` -> `report_id`, `GET /get_report_status?report_id=` -> status and
`download_url` when ready. Report creation is limited to 15 per hour per API key: the ledger of
creations lives in the database (`VibeReportRequest`, under an advisory lock), so the limit holds
across workers and processes. 429 and 5xx answers (and network errors) are retried with
exponential backoff and full jitter, honouring `Retry-After`; other 4xx answers fail at once.
Figures settle 6-7 hours after delivery, so the daily schedule also re-pulls the day before.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.selectors import client_settings
from ingestion.models import VibeReportRequest
from p360.core.crypto import decrypt, fingerprint

if TYPE_CHECKING:
    from ingestion.models import IngestionRun
    from p360.core.jobs.services import JobContext

logger = logging.getLogger(__name__)
METRICS = ["impressions", "clicks", "conversions", "revenue"]
DIMENSIONS = ["date", "campaign_name", "strategy_name", "placement_name", "creative_name"]
DONE, FAILED = {"done", "ready", "completed", "success"}, {"error", "failed", "cancelled"}


class VibeError(Exception):
    pass


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from `Retry-After` (delta or HTTP date) or Vibe's `x-rate-limit-retry-after`."""
    for header in ("retry-after", "x-rate-limit-retry-after"):
        value = response.headers.get(header)
        if not value:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, (parsed - dt.datetime.now(dt.UTC)).total_seconds())
    return None


class VibeClient:
    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = (base_url or settings.P360_VIBE_BASE_URL).rstrip("/")
        self.http = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), headers={"X-API-KEY": api_key})
        self.sleep = sleep
        self.log = log or (lambda message: logger.info("vibe: %s", message))
        self.retries = settings.P360_VIBE_MAX_RETRIES
        self.waited = 0.0

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, url: str, *, with_key: bool = True, **kwargs: Any) -> httpx.Response:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                if with_key:
                    response = self.http.request(method, url, **kwargs)
                else:  # a download URL may be on another host (signed): never send it our key
                    response = httpx.request(method, url, timeout=60.0, **kwargs)
            except httpx.TransportError as exc:
                response, last = None, f"network error: {exc}"
            if response is not None:
                if response.status_code < 400:
                    return response
                if response.status_code == 403:
                    raise VibeError("Vibe refused the API key (403): check the key in the client settings")
                if response.status_code not in (429, 500, 502, 503, 504):
                    raise VibeError(f"Vibe answered {response.status_code} to {method} {url}: {response.text[:300]}")
                last = f"HTTP {response.status_code}"
            if attempt == self.retries:
                break
            hinted = retry_after_seconds(response) if response is not None else None
            if hinted is not None and hinted > settings.P360_VIBE_RATE_WAIT_MAX:
                # Honouring an hour-long Retry-After would hold a worker past its task timeout.
                raise VibeError(
                    f"Vibe rate limit: Vibe asked to retry {method} {url.rsplit('/', 1)[-1]} after {hinted:.0f} s "
                    f"(more than P360_VIBE_RATE_WAIT_MAX={settings.P360_VIBE_RATE_WAIT_MAX:.0f} s); retry the run later"
                )
            ceiling = min(settings.P360_VIBE_BACKOFF_CAP, settings.P360_VIBE_BACKOFF_BASE * 2**attempt)
            delay = hinted if hinted is not None else random.uniform(0, ceiling)  # full jitter
            if hinted is not None:
                delay += random.uniform(0, settings.P360_VIBE_BACKOFF_BASE / 2)  # do not all wake at once
            self.log(
                f"{method} {url.rsplit('/', 1)[-1]}: {last}; retry {attempt + 1} of {self.retries} in {delay:.2f} s"
            )
            self.waited += delay
            self.sleep(delay)
        raise VibeError(f"Vibe kept failing ({last}) after {self.retries} retries: {method} {url}")

    def create_report(self, advertiser_id: str, day: dt.date) -> str:
        body = {
            "advertiser_id": advertiser_id,
            "start_date": day.isoformat(),
            "end_date": day.isoformat(),
            "metrics": METRICS,
            "dimensions": DIMENSIONS,
            "timezone": "UTC",
            "granularity": "day",
            "format": "csv",
        }
        data = self._request("POST", f"{self.base_url}/create_async_report", json=body).json()
        report_id = data.get("report_id") or data.get("id")
        if not report_id:
            raise VibeError(f"Vibe did not return a report_id: {str(data)[:200]}")
        return str(report_id)

    def report_status(self, report_id: str) -> dict[str, Any]:
        return self._request("GET", f"{self.base_url}/get_report_status", params={"report_id": report_id}).json()

    def wait_for_report(self, report_id: str, *, poll_seconds: float, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        status = "?"
        while True:
            data = self.report_status(report_id)
            status = str(data.get("status", "")).lower()
            if status in DONE:
                url = data.get("download_url") or data.get("url")
                if not url:
                    raise VibeError(f"Vibe report {report_id} is {status} but has no download_url")
                return str(url)
            if status in FAILED:
                raise VibeError(f"Vibe report {report_id} failed on Vibe's side: {data.get('error') or status}")
            if time.monotonic() + poll_seconds > deadline:
                raise VibeError(
                    f"Vibe report {report_id} was not ready after {timeout:.0f} s (last status {status!r}); "
                    "the run will be retried by the next schedule or from the admin"
                )
            self.sleep(poll_seconds)

    def download(self, url: str, target: Path) -> int:
        response = self._request("GET", url, with_key=url.startswith(self.base_url))
        target.write_bytes(response.content)
        return len(response.content)


# --- The rate-limit ledger (database, shared by every worker) -------------------------------------


def acquire_creation_slot(
    *,
    key_hash: str,
    org: Any = None,
    run: IngestionRun | None = None,
    day: dt.date | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> VibeReportRequest:
    """Record one report creation for this key, waiting while 15 were made in the last hour."""
    limit = settings.P360_VIBE_CREATES_PER_HOUR
    waited = 0.0
    lock_key = zlib.crc32(f"p360:vibe:{key_hash}".encode())
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key])
            now = timezone.now()
            recent = list(
                VibeReportRequest.objects.filter(key_hash=key_hash, created_at__gt=now - dt.timedelta(hours=1))
                .order_by("created_at")
                .values_list("created_at", flat=True)
            )
            if len(recent) < limit:
                return VibeReportRequest.objects.create(
                    key_hash=key_hash, org=org, run=run, report_date=day, created_at=now
                )
            free_at = recent[len(recent) - limit] + dt.timedelta(hours=1)
        wait = max(0.5, (free_at - timezone.now()).total_seconds())
        if waited + wait > settings.P360_VIBE_RATE_WAIT_MAX:
            raise VibeError(
                f"Vibe rate limit: {limit} report creations in the last hour for this API key; "
                f"the next slot opens at {free_at:%H:%M:%S} UTC"
            )
        logger.info("vibe rate limit reached; waiting %.0f s", wait)
        sleep(wait)
        waited += wait


def fetch(run: IngestionRun, directory: Path, ctx: JobContext | None) -> tuple[Path, str]:
    """Create, wait for and download the run's one-day report; returns (path, file name)."""
    from ingestion.services import SourceError

    assert run.org is not None and run.run_date is not None
    row = client_settings()
    if not (row.vibe_advertiser_id and row.vibe_api_key_encrypted):
        raise SourceError(
            f"Vibe is not configured for {run.org.slug}: set the advertiser id and API key in the client settings"
        )
    try:
        api_key = decrypt(row.vibe_api_key_encrypted)
    except Exception as exc:
        raise SourceError(str(exc)) from exc
    log = (lambda message: ctx.log(message)) if ctx else None
    client = VibeClient(api_key, log=log)
    try:
        slot = acquire_creation_slot(key_hash=fingerprint(api_key), org=run.org, run=run, day=run.run_date)
        report_id = client.create_report(row.vibe_advertiser_id, run.run_date)
        VibeReportRequest.objects.filter(pk=slot.pk).update(report_id=report_id, status="created")
        if ctx:
            ctx.log(f"Vibe report {report_id} created for {run.run_date}")
        url = client.wait_for_report(
            report_id, poll_seconds=settings.P360_VIBE_POLL_SECONDS, timeout=settings.P360_VIBE_POLL_TIMEOUT
        )
        name = f"vibe-{row.vibe_advertiser_id}-{run.run_date.isoformat()}.csv"
        size = client.download(url, directory / name)
        VibeReportRequest.objects.filter(pk=slot.pk).update(status="downloaded")
        run.params = {**run.params, "report_id": report_id, "retry_wait_s": round(client.waited, 2), "bytes": size}
        return directory / name, name
    except VibeError as exc:
        raise SourceError(str(exc)) from exc
    finally:
        client.close()
