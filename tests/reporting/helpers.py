"""Generated paid-media data for the reporting tests, loaded through the real `ingest` command, and
an independent reference (plain Decimal arithmetic, ROUND_HALF_UP) of document 004 appendix A.1."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from django.core.management import call_command

from tests.ingestion.helpers import SURFSIDE_HEADER, ingest, set_cpm, write_csv

CPM = Decimal("12.3456")


def generate_rows(days: list[dt.date], seed: int = 7, campaigns: int = 3, creatives: int = 4) -> list[list[Any]]:
    """Surfside rows: every creative of every campaign on every day, random counts (some zeros)."""
    rng = random.Random(seed)
    rows = []
    for day in days:
        for c in range(campaigns):
            for k in range(creatives):
                impressions = rng.choice([0, rng.randint(1, 50_000)])
                clicks = rng.randint(0, max(0, impressions // 50)) if impressions else 0
                conversions = rng.randint(0, clicks) if clicks else 0
                revenue = Decimal(rng.randint(0, 500_000)) / 100 if conversions else Decimal(0)
                rows.append(
                    [
                        day.isoformat(),
                        f"Campaign {c}",
                        f"Strategy {c}-{k % 2}",
                        f"Placement {c}-{k % 2}",
                        f"Creative {c}-{k}",
                        impressions,
                        clicks,
                        conversions,
                        f"{revenue:.2f}",
                    ]
                )
    return rows


def load(org: Any, tmp_path: Path, rows: list[list[Any]], name: str = "m.csv", cpm: Decimal = CPM) -> dict[str, Any]:
    set_cpm(org, str(cpm))
    return ingest("surfside", str(write_csv(tmp_path / name, SURFSIDE_HEADER, rows)), "--org", org.slug)


def days(start: str, n: int) -> list[dt.date]:
    first = dt.date.fromisoformat(start)
    return [first + dt.timedelta(days=i) for i in range(n)]


def _q(value: Decimal, places: int) -> str:
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def expected(rows: list[list[Any]], start: dt.date, end: dt.date, cpm: Decimal = CPM, **match: str) -> dict[str, Any]:
    """Appendix A.1 on the totals of `rows` within [start, end] (optionally one campaign/creative)."""
    imp = clk = conv = 0
    rev = Decimal(0)
    for row in rows:
        day = dt.date.fromisoformat(row[0])
        if not start <= day <= end:
            continue
        if "campaign" in match and row[1] != match["campaign"]:
            continue
        if "creative" in match and row[4] != match["creative"]:
            continue
        imp, clk, conv, rev = imp + int(row[5]), clk + int(row[6]), conv + int(row[7]), rev + Decimal(row[8])
    spend = Decimal(imp) * cpm / 1000
    return {
        "impressions": imp,
        "clicks": clk,
        "conversions": conv,
        "conversion_revenue": _q(rev, 2),
        "spend": _q(spend, 2),
        "ctr": _q(Decimal(clk) * 100 / imp, 6) if imp else None,
        "cpc": _q(spend / clk, 4) if clk else None,
        "cpa": _q(spend / conv, 4) if conv else None,
        "roas": _q(rev * 100 / spend, 4) if spend else None,
    }


def aggregate(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("aggregate", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def shown(value: Any) -> str:
    """How the pages print a figure: thousands separators (Django's intcomma)."""
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{Decimal(value):,}"
