"""Sync campaigns and line items to The Trade Desk as TTD campaigns and ad groups (REST API v3 shapes).

- `POST /campaign`, `PUT /campaign`, `GET /campaign/{id}`; `POST /adgroup`, `PUT /adgroup`,
  `GET /adgroup/{id}`; header `TTD-Auth: <token>`; money as `{"Amount": float, "CurrencyCode": "USD"}`.
- Idempotent: the payload's SHA-256 is kept with the object; the same state again sends nothing.
- Retried with exponential backoff on 429, 5xx and transport errors (`Retry-After` honoured).
- Drift: before an update the remote object is read; if its budget is not what we last sent, someone
  changed it at TTD. That is logged (with TTD's values) and shown, never overwritten, unless `force`.
- Every attempt leaves a `SyncLog` row per object (create, update, unchanged, drift, error).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings

from campaigns.models import Campaign, LineItem, Pacing, SyncLog
from p360.core.audit.services import record
from p360.core.jobs.dispatch import org_task
from tenants.selectors import current_org

if TYPE_CHECKING:
    from tenants.models import User

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class TtdError(Exception):
    """TTD refused or could not be reached after the retries."""


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"Amount": float(amount), "CurrencyCode": currency}


def _when(day: dt.date | None) -> str | None:
    return f"{day.isoformat()}T00:00:00" if day else None


class TtdClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        retries: int | None = None,
        backoff: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or settings.P360_TTD_API_URL).rstrip("/")
        token = token if token is not None else settings.P360_TTD_API_TOKEN
        if not token:
            raise TtdError("no TTD API token: set P360_TTD_API_TOKEN")
        self.retries = settings.P360_TTD_RETRIES if retries is None else retries
        self.backoff = settings.P360_TTD_BACKOFF_SECONDS if backoff is None else backoff
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"TTD-Auth": token, "Content-Type": "application/json"},
            timeout=30,
            transport=transport,
        )
        self.attempts = 0  # of the last call

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        self.attempts = 0
        last = ""
        for attempt in range(self.retries + 1):
            self.attempts = attempt + 1
            try:
                response = self.http.request(method, path, json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return dict(response.json()) if response.content else {}
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRYABLE:
                    raise TtdError(f"{method} {path}: {last}")
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit() and attempt < self.retries:
                    time.sleep(min(float(retry_after), 60.0))
                    continue
            if attempt < self.retries:
                time.sleep(self.backoff * (2**attempt))
        raise TtdError(f"{method} {path}: gave up after {self.attempts} attempts ({last})")


def campaign_payload(campaign: Campaign, advertiser_id: str) -> dict[str, Any]:
    from campaigns.pacing import campaign_flight

    start, end = campaign_flight(campaign)
    return {
        "AdvertiserId": advertiser_id,
        "CampaignName": campaign.name,
        "Budget": _money(campaign.budget, campaign.currency),
        "StartDate": _when(start),
        "EndDate": _when(end),
        "PacingMode": "PaceEvenly",
        "Availability": "Available" if campaign.status == "active" else "Paused",
    }


def ad_group_payload(li: LineItem, ttd_campaign_id: str) -> dict[str, Any]:
    return {
        "CampaignId": ttd_campaign_id,
        "AdGroupName": li.name,
        "IsEnabled": li.status == "active",
        "RTBAttributes": {
            "BudgetSettings": {
                "Budget": _money(li.budget, li.currency),
                "PacingMode": "PaceAhead" if li.pacing == Pacing.ASAP else "PaceEvenly",
            },
            "BaseBidCPM": _money(li.bid, li.currency),
            "MaxBidCPM": _money(li.bid, li.currency),
        },
    }


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _remote_budget(kind: str, remote: dict[str, Any]) -> Decimal | None:
    try:
        money = remote["Budget"] if kind == "campaign" else remote["RTBAttributes"]["BudgetSettings"]["Budget"]
        return Decimal(str(money["Amount"])).quantize(Decimal("0.01"))
    except (KeyError, TypeError, ValueError):
        return None


def _sync_one(client: TtdClient, obj: Campaign | LineItem, payload: dict[str, Any], *, force: bool) -> SyncLog:
    kind = "campaign" if isinstance(obj, Campaign) else "line_item"
    path = "/campaign" if kind == "campaign" else "/adgroup"
    id_field = "CampaignId" if kind == "campaign" else "AdGroupId"
    remote_id = obj.ttd_campaign_id if isinstance(obj, Campaign) else obj.ttd_ad_group_id
    digest = _hash(payload)
    log = SyncLog(object_type=kind, object_id=obj.pk, remote_id=remote_id, request=payload)
    if remote_id and digest == obj.ttd_synced_hash and not force:
        log.action, log.message = "unchanged", "same state as the last sync: nothing sent"
        log.save()
        return log
    try:
        if not remote_id:
            answer = client.call("POST", path, payload)
            remote_id = str(answer.get(id_field, ""))
            if not remote_id:
                raise TtdError(f"TTD's answer has no {id_field}")
            log.action = "create"
        else:
            remote = client.call("GET", f"{path}/{remote_id}")
            theirs = _remote_budget(kind, remote)
            if not force and obj.ttd_synced_budget is not None and theirs != obj.ttd_synced_budget:
                log.action, log.remote, log.attempts = "drift", remote, client.attempts
                log.message = (
                    f"budget changed at TTD: {theirs} there, {obj.ttd_synced_budget} last sent; not overwritten "
                    "(sync with --force to overwrite, or set the budget here)"
                )
                log.save()
                return log
            client.call("PUT", path, {**payload, id_field: remote_id})
            log.action = "update"
    except TtdError as exc:
        log.action, log.message, log.attempts = "error", str(exc)[:1000], client.attempts
        log.save()
        return log
    log.remote_id, log.attempts = remote_id, client.attempts
    log.message = f"{log.action}d {kind} {remote_id}"
    log.save()
    update: dict[str, Any] = {"ttd_synced_hash": digest, "ttd_synced_budget": obj.budget}
    update["ttd_campaign_id" if kind == "campaign" else "ttd_ad_group_id"] = remote_id
    type(obj).objects.filter(pk=obj.pk).update(**update)
    for key, value in update.items():
        setattr(obj, key, value)
    return log


@org_task
def sync_campaign(
    *, campaign: Campaign, actor: User | None, force: bool = False, client: TtdClient | None = None
) -> list[SyncLog]:
    """Sync the campaign, then its line items (ad groups need the TTD campaign id). Each object is its
    own unit: a failure is logged and the others still sync; running it again picks up where it failed."""
    org = current_org()
    advertiser = getattr(org, "ttd_advertiser_id", "") or ""
    if not advertiser:
        raise TtdError("the organisation has no TTD advertiser id")
    own = client is None
    client = client or TtdClient()
    try:
        logs = [_sync_one(client, campaign, campaign_payload(campaign, advertiser), force=force)]
        if campaign.ttd_campaign_id:
            for li in campaign.line_items.order_by("pk"):
                logs.append(_sync_one(client, li, ad_group_payload(li, campaign.ttd_campaign_id), force=force))
    finally:
        if own:
            client.close()
    record(
        action="campaign.ttd_sync",
        actor=actor,
        org=org,
        entity=campaign,
        after={"results": [f"{log.object_type} {log.object_id}: {log.action}" for log in logs], "force": force},
    )
    return logs
