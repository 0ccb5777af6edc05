"""Demo metrics: 91 days (ending today) from every source for the demo organisations, loaded through the real
ETL (so the runs, quarantine and hierarchy look like production). Idempotent: a source that
already has metrics in an organisation is skipped."""

from __future__ import annotations

import csv
import datetime as dt
import random
import tempfile
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from django.db.models import Max, Min, Sum
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import Campaign, CampaignStatus, CpmRate, DailyMetric
from campaigns.services import campaign_save, cpm_set
from ingestion.models import Source, Trigger
from ingestion.services import ingest_file

# 91 days ending today: the default 30-day report (ending yesterday) and its previous 30 days are both covered,
# and so is the previous period of a 60-day range.
DAYS = 91
CPMS = {"acme": "12.5000", "globex": "9.7500"}
CAMPAIGNS = {
    "acme": ["Acme Q4 awareness", "Acme retargeting always-on"],
    "globex": ["Globex holiday push", "Globex logistics EMEA"],
}


def _days() -> list[dt.date]:
    end = timezone.now().date()
    return [end - dt.timedelta(days=n) for n in range(DAYS - 1, -1, -1)]


def _write(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _metric_rows(slug: str, rng: random.Random, with_strategy: bool = True) -> list[tuple[Any, ...]]:
    rows = []
    for day in _days():
        weekend = 0.7 if day.weekday() >= 5 else 1.0
        for campaign in CAMPAIGNS[slug]:
            for strategy in ["Prospecting", "Retargeting"] if with_strategy else ["Broad"]:
                for placement in ("Premium news", "Business apps"):
                    for creative in ("Banner 300x250", "Video 15s"):
                        impressions = int(rng.randint(8_000, 40_000) * weekend)
                        clicks = int(impressions * rng.uniform(0.001, 0.008))
                        conversions = int(clicks * rng.uniform(0.02, 0.12))
                        revenue = round(conversions * rng.uniform(40, 160), 2)
                        rows.append(
                            (day, campaign, strategy, placement, creative, impressions, clicks, conversions, revenue)
                        )
    return rows


def _surfside(tmp: Path, slug: str, rng: random.Random) -> Path:
    header = [
        "Date",
        "Campaign",
        "Strategy",
        "Placement",
        "Creative",
        "Impressions",
        "Clicks",
        "Conversions",
        "Conversion Revenue",
    ]
    rows = [[d.isoformat(), *rest] for d, *rest in _metric_rows(slug, rng)]
    return _write(tmp / f"demo-surfside-{slug}.csv", header, rows)


def _vibe(tmp: Path, slug: str, rng: random.Random) -> Path:
    header = [
        "date",
        "campaign_name",
        "strategy_name",
        "placement_name",
        "creative_name",
        "impressions",
        "clicks",
        "conversions",
        "revenue",
    ]
    rows = [
        [d.isoformat(), f"{c} CTV", s, "CTV " + p, cr, i, cl, cv, rv]
        for d, c, s, p, cr, i, cl, cv, rv in _metric_rows(slug, rng, False)
    ]
    return _write(tmp / f"demo-vibe-{slug}.csv", header, rows)


def _facebook(tmp: Path, slug: str, rng: random.Random) -> Path:
    header = [
        "Day",
        "Campaign name",
        "Ad set name",
        "Ad name",
        "Impressions",
        "Link clicks",
        "Results",
        "Purchases conversion value",
        "Amount spent (USD)",
    ]
    rows = [
        [d.isoformat(), f"{c} (Meta)", s, f"{cr} - {p}", f"{i:,}", cl, cv, f"{rv:,.2f}", "0"]
        for d, c, s, p, cr, i, cl, cv, rv in _metric_rows(slug, rng, False)
    ]
    return _write(tmp / f"demo-facebook-{slug}.csv", header, rows)


def _reds(tmp: Path, orgs: list[Any], rng: random.Random) -> Path:
    header = [
        "event_timestamp",
        "advertiser_id",
        "campaign_id",
        "line_item_id",
        "event_type",
        "cost_usd",
        "audience_id",
        "user_id",
        "user_id_type",
        "conversion_value",
    ]
    rows = []
    for org in orgs:
        for day in _days():
            for n in range(150):
                user = f"{org.slug}-user-{rng.randint(1, 400)}"
                ts = dt.datetime.combine(day, dt.time(rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)))
                kind = rng.choices(["impression", "click", "conversion"], weights=[90, 8, 2])[0]
                value = f"{rng.uniform(20, 200):.2f}" if kind == "conversion" else ""
                rows.append(
                    [
                        f"{ts.isoformat()}Z",
                        org.ttd_advertiser_id,
                        f"ttd-{org.slug}-cmp{n % 2 + 1}",
                        f"li-{n % 3 + 1}",
                        kind,
                        f"{rng.uniform(0.0005, 0.004):.6f}" if kind == "impression" else "0",
                        f"aud-{n % 4}",
                        user,
                        rng.choice(["UID2", "TDID", "MAID"]),
                        value,
                    ]
                )
    return _write(tmp / "demo-reds.psv", header, rows, delimiter="|")


def _give_campaigns_flights() -> int:
    """Ingested campaigns arrive with no flight or budget; give the demo's a real flight (first day with data to
    a month past the last) and a budget of about 1.4x what they have spent, rounded to the thousand.
    Only campaigns that still have neither are touched, so a second run (or a user's edit) is left alone."""
    updated = 0
    bare = Campaign.objects.filter(start_date__isnull=True, end_date__isnull=True, budget=0)
    spans = {
        row["campaign"]: row
        for row in DailyMetric.objects.filter(campaign__in=bare)
        .values("campaign")
        .annotate(first=Min("date"), last=Max("date"), spent=Sum("spend"), revenue=Sum("conversion_revenue"))
    }
    for campaign in bare.filter(pk__in=spans):
        span = spans[campaign.pk]
        basis = max(span["spent"] or Decimal("0"), (span["revenue"] or Decimal("0")) / 4, Decimal("1000"))
        campaign.start_date = span["first"]
        campaign.end_date = span["last"] + dt.timedelta(days=30)
        campaign.budget = (basis * Decimal("1.4") / 1000).quantize(Decimal("1"), rounding=ROUND_CEILING) * 1000
        campaign.status = CampaignStatus.ACTIVE
        campaign_save(campaign=campaign, actor=None)
        updated += 1
    return updated


def load_demo_metrics(orgs: list[Any]) -> dict[str, int]:
    """Returns {"<org>:<source>": metric rows loaded now} (empty when everything was there)."""
    loaded: dict[str, int] = {}
    rng = random.Random(360)  # the same demo every time
    first_day = _days()[0] - dt.timedelta(days=60)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        reds_orgs = []
        for org in orgs:
            with schema_context(org.schema_name):
                if not CpmRate.objects.exists():
                    cpm_set(cpm=CPMS.get(org.slug, "10"), effective_date=first_day, actor=None, note="demo")
                have = set(DailyMetric.objects.values_list("source", flat=True).distinct())
            if Source.REDS not in have and org.ttd_advertiser_id:
                reds_orgs.append(org)
            for source, make in ((Source.SURFSIDE, _surfside), (Source.VIBE, _vibe), (Source.FACEBOOK, _facebook)):
                if source in have:
                    continue
                run = ingest_file(source=source, org=org, path=make(tmp, org.slug, rng), trigger=Trigger.DEMO)
                loaded[f"{org.slug}:{source}"] = run.metrics_written
        if reds_orgs:
            run = ingest_file(source=Source.REDS, org=None, path=_reds(tmp, reds_orgs, rng), trigger=Trigger.DEMO)
            for slug in run.routed:
                loaded[f"{slug}:reds"] = run.routed[slug]
    for org in orgs:
        with schema_context(org.schema_name):
            _give_campaigns_flights()
    return loaded
