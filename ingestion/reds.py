"""TTD REDS event files: validate, route to organisations by advertiser id, store, roll up.

Layout (ours, see the contract): a header row; `|`, `,` or tab; optionally gzipped; columns
event_timestamp, advertiser_id, campaign_id, line_item_id, event_type, cost_usd, audience_id,
user_id, user_id_type, conversion_value.

- Rows whose advertiser id matches no active organisation are quarantined (nothing guessed).
- Events go into each org's `ingestion_store_redsevent` table, partitioned by day, with everything
  attribution needs (timestamp, campaign, line item, type, cost, audience, user id and type, value).
- A file loaded again (same name or same content) replaces its own events: never doubled.
- Daily roll-up: every day the file touches is recomputed from all of that day's events into
  daily metrics (source `reds`): campaign = the campaign whose external id is the TTD campaign id
  (else a `reds` campaign named by it), strategy = line item, placement and creative = "(all)".
Everything for all organisations commits in one transaction.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

import polars as pl
from django.db import connection, transaction
from django.utils import timezone

from campaigns.selectors import client_settings, cpm_by_date
from ingestion import etl
from ingestion.ingestion_store.models import RedsFile
from ingestion.models import RunStatus
from ingestion.services import stored_file
from p360.core import registry
from p360.core.audit.services import record
from p360.core.fault_inject import fault_point
from p360.core.intake.tables import (
    LINE,
    RAW,
    REASON,
    FileRejected,
    combine_problems,
    map_columns,
    name_problem,
    number_problem,
)
from tenants.models import Organization

if TYPE_CHECKING:
    from ingestion.models import IngestionRun
    from p360.core.jobs.services import JobContext

SPEC = {
    "event_timestamp": ["event timestamp", "timestamp", "event time"],
    "advertiser_id": ["advertiser id", "advertiserid"],
    "campaign_id": ["campaign id", "campaignid"],
    "line_item_id": ["line item id", "lineitemid", "adgroup id", "ad group id"],
    "event_type": ["event type", "eventtype"],
    "cost_usd": ["cost usd", "cost", "media cost"],
    "audience_id": ["audience id", "audienceid"],
    "user_id": ["user id", "userid", "tdid"],
    "user_id_type": ["user id type", "useridtype", "id type"],
    "conversion_value": ["conversion value", "conversionvalue", "revenue"],
}
OPTIONAL = frozenset({"audience_id", "conversion_value", "user_id", "user_id_type", "cost_usd"})
EVENT_TYPES = ("impression", "click", "conversion")
ID_TYPES = ("UID2", "TDID", "MAID", "IP")
EVENTS = "ingestion_store_redsevent"
ALL = "(all)"


def _timestamp(column: str) -> pl.Expr:
    text = pl.col(column).fill_null("").str.strip_chars()
    utc = text.str.replace("T", " ").str.replace(r"(Z|[+-]00:?00)$", "")
    formats = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
    parsed = [utc.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us") for fmt in formats]
    offset = (
        text.str.replace("T", " ")
        .str.to_datetime("%Y-%m-%d %H:%M:%S%.f%:z", strict=False, time_unit="us")
        .dt.convert_time_zone("UTC")
    )
    return pl.coalesce([*parsed, offset])


def _text(mapping: dict[str, str], field: str) -> pl.Expr:
    if field not in mapping:
        return pl.lit("")
    return pl.col(mapping[field]).fill_null("").str.strip_chars()


def validate(
    table: etl.Table, name: str, advertisers: dict[str, str], only: str | None = None
) -> tuple[pl.DataFrame, list[tuple[int, str, str]], dict[int, str]]:
    """(valid events with an `org` column, bad rows, owners: line -> org slug of each bad row whose
    advertiser id is an organisation's); advertisers maps lower-case id -> org slug."""
    mapping = map_columns(table.columns, SPEC, optional=OPTIONAL, file_name=name)
    # An hourly file has at most a few thousand distinct timestamps: parse each once, then join.
    ts_col = mapping["event_timestamp"]
    distinct = table.df.select(pl.col(ts_col).unique()).with_columns(_timestamp(ts_col).alias("event_timestamp_v"))
    df = table.df.join(distinct, on=ts_col, how="left", maintain_order="left", nulls_equal=True).with_columns(
        _text(mapping, "event_type").str.to_lowercase().alias("event_type_v"),
        _text(mapping, "user_id_type").str.to_uppercase().alias("user_id_type_v"),
        _text(mapping, "advertiser_id").alias("advertiser_id_v"),
    )
    adv_map = pl.DataFrame(
        {"adv_key": list(advertisers), "org": list(advertisers.values())},
        schema={"adv_key": pl.String, "org": pl.String},
    )
    df = df.with_columns(pl.col("advertiser_id_v").str.to_lowercase().alias("adv_key")).join(
        adv_map, on="adv_key", how="left", maintain_order="left"
    )
    problems = [
        pl.when(pl.col("event_timestamp_v").is_null())
        .then(
            pl.format(
                "event_timestamp '{}' is not a timestamp",
                pl.col(mapping["event_timestamp"]).fill_null("").str.slice(0, 40),
            )
        )
        .otherwise(None),
        name_problem(mapping["advertiser_id"], "advertiser_id", 64),
        pl.when((pl.col("advertiser_id_v") != "") & pl.col("org").is_null())
        .then(
            pl.format(
                "unknown TTD advertiser id '{}' (no organisation has it)", pl.col("advertiser_id_v").str.slice(0, 64)
            )
        )
        .otherwise(None),
        pl.when(pl.col("org").is_not_null() & (pl.col("org") != pl.lit(only or "")) & pl.lit(only is not None))
        .then(
            pl.format(
                f"advertiser id '{{}}' belongs to another organisation (this run loads {only} only)",
                pl.col("advertiser_id_v").str.slice(0, 64),
            )
        )
        .otherwise(None),
        name_problem(mapping["campaign_id"], "campaign_id", 100),
        name_problem(mapping["line_item_id"], "line_item_id", 100),
        pl.when(~pl.col("event_type_v").is_in(EVENT_TYPES))
        .then(
            pl.format("event_type '{}' is not impression, click or conversion", pl.col("event_type_v").str.slice(0, 30))
        )
        .otherwise(None),
    ]
    if "cost_usd" in mapping:
        problems.append(number_problem(mapping["cost_usd"], "cost_usd", whole=False, integer_digits=12))
    if "conversion_value" in mapping:
        problems.append(number_problem(mapping["conversion_value"], "conversion_value", whole=False))
    if "user_id_type" in mapping:
        problems.append(
            pl.when((pl.col("user_id_type_v") != "") & ~pl.col("user_id_type_v").is_in(ID_TYPES))
            .then(
                pl.format("user_id_type '{}' is not UID2, TDID, MAID or IP", pl.col("user_id_type_v").str.slice(0, 20))
            )
            .otherwise(None)
        )
    for field, limit in (("audience_id", 100), ("user_id", 200)):
        if field in mapping:
            problems.append(
                pl.when(pl.col(mapping[field]).fill_null("").str.len_chars() > limit)
                .then(pl.lit(f"{field} is longer than {limit} characters"))
                .otherwise(None)
            )
    df = df.with_columns(combine_problems(problems).alias(REASON))
    bad_df = df.filter(pl.col(REASON).is_not_null())
    bad = list(table.bad) + list(
        zip(bad_df[LINE].to_list(), bad_df[REASON].to_list(), bad_df[RAW].to_list(), strict=True)
    )
    bad.sort(key=lambda item: item[0])
    owned = bad_df.filter(pl.col("org").is_not_null())
    owners = dict(zip(owned[LINE].to_list(), owned["org"].to_list(), strict=True))

    def money(field: str, places: int, default_zero: bool) -> pl.Expr:
        if field not in mapping:
            return pl.lit("0" if default_zero else None, pl.String).cast(pl.Decimal(18, places))
        text = pl.col(mapping[field]).fill_null("").str.strip_chars().str.strip_chars('"').str.replace(r"^[$]", "")
        text = text.str.replace_all(",", "")
        if default_zero:
            text = pl.when(text == "").then(pl.lit("0")).otherwise(text)
        return text.cast(pl.Decimal(18, places), strict=False)

    good = df.filter(pl.col(REASON).is_null()).select(
        pl.col("org"),
        pl.col(LINE).alias("line_no"),
        pl.col("event_timestamp_v").dt.date().alias("event_date"),
        pl.col("event_timestamp_v").dt.strftime("%Y-%m-%d %H:%M:%S%.6f+00").alias("event_timestamp"),
        pl.col("advertiser_id_v").alias("advertiser_id"),
        _text(mapping, "campaign_id").alias("campaign_id"),
        _text(mapping, "line_item_id").alias("line_item_id"),
        pl.col("event_type_v").alias("event_type"),
        money("cost_usd", 6, True).alias("cost_usd"),
        _text(mapping, "audience_id").alias("audience_id"),
        _text(mapping, "user_id").alias("user_id"),
        pl.col("user_id_type_v").alias("user_id_type"),
        money("conversion_value", 4, False).alias("conversion_value"),
    )
    return good, bad, owners


def _slices(valid: pl.DataFrame, bad: list[tuple[int, str, str]], owners: dict[int, str]) -> dict[str, dict[str, Any]]:
    """Each organisation's own slice of a multi-organisation file: what its org admin may see."""
    slices: dict[str, dict[str, Any]] = {}
    loaded = valid.group_by("org").len() if not valid.is_empty() else None
    for org_slug, count in loaded.iter_rows() if loaded is not None else []:
        slices[str(org_slug)] = {"rows_loaded": int(count), "rows_quarantined": 0, "dates": [], "warnings": []}
    for line, _, _ in bad:
        owner = owners.get(line)
        if owner is not None:
            item = slices.setdefault(owner, {"rows_loaded": 0, "rows_quarantined": 0, "dates": [], "warnings": []})
            item["rows_quarantined"] += 1
    for item in slices.values():
        item["rows_read"] = item["rows_loaded"] + item["rows_quarantined"]
    return slices


def ensure_event_partitions(days: list[dt.date]) -> None:
    """Create the current org's REDS event partitions of these days (idempotent); other apps and tests that write
    events (activation's device-file tests, attribution) call this before inserting."""
    schema = connection.schema_name  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        for day in days:
            part = f"{EVENTS}_p{day:%Y%m%d}"
            cursor.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}"."{part}" PARTITION OF "{schema}".{EVENTS} '
                f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + dt.timedelta(days=1)).isoformat()}')"
            )


_ensure_partitions = ensure_event_partitions  # the former private name (tests/attribution, bench_attribution)

_COLUMNS = [
    "event_date",
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
    "file_id",
    "line_no",
]


def _store_events(run: IngestionRun, events: pl.DataFrame) -> tuple[list[dt.date], list[dt.date]]:
    """Replace this file's events in the current org; returns (days of this file, days touched)."""
    previous = (
        RedsFile.objects.filter(name=run.file_name).first()
        or RedsFile.objects.filter(content_hash=run.content_hash).first()
    )
    old_days: list[dt.date] = []
    with connection.cursor() as cursor:
        if previous is not None:
            old_days = [dt.date.fromisoformat(day) for day in previous.days]
            cursor.execute(f"DELETE FROM {EVENTS} WHERE file_id = %s AND event_date = ANY(%s)", [previous.pk, old_days])
    reds_file = previous or RedsFile(name=run.file_name)
    reds_file.name, reds_file.content_hash, reds_file.run_id, reds_file.events = (
        run.file_name,
        run.content_hash,
        run.pk,
        events.height,
    )
    days = sorted(events["event_date"].unique().to_list())
    reds_file.days = [day.isoformat() for day in days]
    reds_file.save()
    ensure_event_partitions(days)
    frame = events.with_columns(pl.lit(reds_file.pk).alias("file_id")).select(_COLUMNS)
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False)
    sql = f"COPY {EVENTS} ({', '.join(_COLUMNS)}) FROM STDIN (FORMAT csv)"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        view = buffer.getbuffer()
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start : start + (1 << 20)])
    return days, sorted(set(days) | set(old_days))


# numeric(18, 6) media cost and numeric(18, 4) revenue of campaigns_dailymetric (issue 15: checked, not wrapped)
_FITS = (
    "coalesce(sum(e.cost_usd), 0) < 1e12 "
    "AND coalesce(sum(e.conversion_value) FILTER (WHERE e.event_type = 'conversion'), 0) < 1e14"
)


def _roll_up(run: IngestionRun, days: list[dt.date], currency: str) -> tuple[int, int, list[str]]:
    """Recompute the `reds` daily metrics of `days` from all their events. Returns (written, replaced, warnings)."""

    rates = cpm_by_date(days)
    missing = [day for day in days if day not in rates]
    warnings = [
        f"no CPM rate in force on {day.isoformat()}: its REDS events are stored but not rolled up; "
        "set a CPM and re-run the file"
        for day in missing
    ]
    with_cpm = [day for day in days if day in rates]
    stage = etl.STAGE
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {stage} WHERE run_id = %s", [run.pk])
        if missing:  # days without a CPM lose their stale roll-up too (it would not match the events)
            cursor.execute("DELETE FROM campaigns_dailymetric WHERE source = 'reds' AND date = ANY(%s)", [missing])
            # what is derived from those days (reporting's roll-up, pacing's spend totals) must lose them too
            registry.call_hooks("metrics_loaded", missing)
        if not with_cpm:
            return 0, 0, warnings
        cursor.execute(
            f"""INSERT INTO campaigns_campaign (name, source, external_id, status, budget, currency, created_at, updated_at)
                SELECT DISTINCT e.campaign_id, 'reds', e.campaign_id, 'active', 0, %s, now(), now()
                FROM {EVENTS} e WHERE e.event_date = ANY(%s)
                  AND NOT EXISTS (SELECT 1 FROM campaigns_campaign c WHERE c.external_id = e.campaign_id)
                ON CONFLICT (name, source) DO NOTHING""",
            [currency, with_cpm],
        )
        cursor.execute(
            f"""INSERT INTO {stage} (run_id, line_no, date, campaign, strategy, placement, creative, impressions, clicks,
                    conversions, conversion_revenue, rows, media_cost, campaign_ref, cpm)
                SELECT %s, min(e.line_no), e.event_date, e.campaign_id, e.line_item_id, %s, %s,
                    count(*) FILTER (WHERE e.event_type = 'impression'),
                    count(*) FILTER (WHERE e.event_type = 'click'),
                    count(*) FILTER (WHERE e.event_type = 'conversion'),
                    coalesce(sum(e.conversion_value) FILTER (WHERE e.event_type = 'conversion'), 0),
                    count(*), sum(e.cost_usd),
                    (SELECT min(c.id) FROM campaigns_campaign c WHERE c.external_id = e.campaign_id),
                    (SELECT r.cpm FROM campaigns_cpmrate r WHERE r.effective_date <= e.event_date
                     ORDER BY r.effective_date DESC LIMIT 1)
                FROM {EVENTS} e WHERE e.event_date = ANY(%s)
                GROUP BY e.event_date, e.campaign_id, e.line_item_id
                HAVING {_FITS}""",
            [run.pk, ALL, ALL, with_cpm],
        )
        # Groups whose sums do not fit the daily metric columns are not rolled up (never wrapped): say which.
        cursor.execute(
            f"""SELECT e.event_date, e.campaign_id, e.line_item_id, min(e.line_no) FROM {EVENTS} e
                WHERE e.event_date = ANY(%s) GROUP BY e.event_date, e.campaign_id, e.line_item_id
                HAVING NOT ({_FITS}) ORDER BY 1, 2, 3 LIMIT 20""",
            [with_cpm],
        )
        warnings += [
            f"{day.isoformat()} campaign {campaign} line item {item} (first line {line}): its summed cost or "
            "conversion value is too large to store; not rolled up"
            for day, campaign, item, line in cursor.fetchall()
        ]
    written, replaced = etl.load_staged(run_id=run.pk, source="reds", currency=currency, dates=with_cpm)
    return written, replaced, warnings


def advertiser_routes() -> dict[str, tuple[str, str]]:

    routes: dict[str, tuple[str, str]] = {}
    for org in Organization.objects.active().exclude(ttd_advertiser_id=""):
        routes[org.ttd_advertiser_id.strip().lower()] = (org.slug, org.schema_name)
    return routes


def execute(run: IngestionRun, ctx: JobContext | None) -> None:
    from django_tenants.utils import schema_context

    from ingestion.services import _finish

    routes = advertiser_routes()
    with stored_file(run) as path:
        table = etl.read_table(path, run.file_name, delimiters="|,\t")
    if table.rows_read == 0:
        raise FileRejected(f"{run.file_name} has a header but no events")
    run.rows_read = table.rows_read
    only = run.org.slug if run.org is not None else None  # started from one org (admin, --org): its rows only
    valid, bad, owners = validate(table, run.file_name, {key: slug for key, (slug, _) in routes.items()}, only)
    if only is not None and run.params.get("slice_of"):
        # An org admin's re-run of a multi-organisation file: only this org's rows exist for it. Other
        # organisations' rows and rows of no organisation are neither read, loaded nor quarantined here.
        bad = [item for item in bad if owners.get(item[0]) == only]
        run.rows_read = valid.height + len(bad)
    slices = _slices(valid, bad, owners)
    run.org_slices = slices
    if ctx:
        ctx.progress(1, 2 + len(routes), rows_read=table.rows_read)
    if valid.is_empty():
        reasons = sorted({reason for _, reason, _ in bad})
        for owner, item in slices.items():
            own = sorted({reason for line, reason, _ in bad if owners.get(line) == owner})
            item["error"] = f"no event of this file could be loaded for {owner}: " + "; ".join(own[:3])
        exc = FileRejected(
            f"no event of {run.file_name} could be loaded ({len(bad):,} quarantined): " + "; ".join(reasons[:3])
        )
        exc.bad = bad  # type: ignore[attr-defined]
        exc.owners = owners  # type: ignore[attr-defined]
        raise exc
    schemas = {slug: schema for slug, schema in routes.values()}
    routed: dict[str, int] = {}
    written_total = replaced_total = 0
    warnings: list[str] = []
    all_days: set[str] = set()
    with transaction.atomic():
        for step, (slug, events) in enumerate(valid.partition_by("org", as_dict=True, include_key=False).items(), 2):
            org_slug = slug[0] if isinstance(slug, tuple) else slug
            with schema_context(schemas[str(org_slug)]):
                etl.lock_source("reds")
                _, touched = _store_events(run, events)
                fault_point("reds:after_events")
                written, replaced, org_warnings = _roll_up(run, touched, client_settings().currency)
            routed[str(org_slug)] = events.height
            written_total += written
            replaced_total += replaced
            warnings += [f"{org_slug}: {w}" for w in org_warnings]
            slices[str(org_slug)].update(dates=[d.isoformat() for d in touched], warnings=org_warnings)
            all_days |= {d.isoformat() for d in touched}
            if ctx:
                ctx.progress(step, 2 + len(routes))
        quarantined = etl.write_quarantine(run.pk, bad, owners)
        _finish(
            run,
            RunStatus.SUCCEEDED,
            rows_loaded=valid.height,
            rows_quarantined=quarantined,
            routed=routed,
            org_slices=slices,
            metrics_written=written_total,
            metrics_replaced=replaced_total,
            dates=sorted(all_days),
            error="; ".join(warnings)[:10_000],
            finished_at=timezone.now(),
        )
    if ctx:
        for warning in warnings:
            ctx.log(warning, "warning")
    record(action="ingestion.run_succeeded", entity=run, after=run.summary())
