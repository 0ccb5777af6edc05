"""Marketer report pages under /o/<slug>/reports/: dashboard, campaign drill-down, summaries, exports.

Every query runs in the current org's schema (the org middleware set it and already answered 404 to
users who may not see the org); exports and downloads check the job belongs to this org.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_tenants.utils import schema_context

from campaigns.models import Campaign, MediaSource, Program
from p360.core import formatting
from p360.core.audit.services import record
from p360.core.exports import XLSX_CONTENT_TYPE
from p360.core.jobs.models import Job, JobStatus
from p360.core.jobs.services import job_start
from p360.core.tenancy import org_storage_prefix
from reporting import selectors
from reporting.exports import CSV_KINDS, NO_PROGRAM, summary_csv, table_csv, table_xlsx
from reporting.jobs import PDF_JOB
from reporting.models import Summary
from reporting.pdf import build_pdf
from reporting.periods import PERIODS, RangeError, check_period, check_range, parse_date, presets
from reporting.selectors import LEVELS, SORTS, Filters

PER_PAGE = 25
MAX_PAGE = 100_000  # beyond this the OFFSET would overflow; no table has that many pages
SORT_LABELS = {
    "name": "Name",
    "impressions": "Impressions",
    "clicks": "Clicks",
    "conversions": "Conversions",
    "conversion_revenue": "Revenue",
    "spend": "Spend",
    "ctr": "CTR %",
    "cpc": "CPC",
    "cpa": "CPA",
    "roas": "ROAS %",
}
KPI_CARDS = [
    ("impressions", "Impressions", True),
    ("clicks", "Clicks", True),
    ("conversions", "Conversions", True),
    ("conversion_revenue", "Revenue", True),
    ("spend", "Spend", None),  # neither good nor bad when it grows
    ("ctr", "CTR %", True),
    ("cpa", "CPA", False),  # lower is better
    ("roas", "ROAS %", True),
]


@dataclass
class ReportQuery:
    """The range, filters and table state of a report page, parsed from the query string."""

    start: dt.date
    end: dt.date
    preset: str
    filters: Filters
    level: str
    query: str
    sort: str
    desc: bool
    page: int
    campaign_param: int | None = None  # the dashboard's campaign filter (not the drill-down page's own)
    program_param: int | None = None  # the program filter (orchestration): its campaigns only

    def params(self, **overrides: Any) -> str:
        base: dict[str, Any] = {"preset": self.preset}
        if self.preset == "custom":
            base.update(start=self.start.isoformat(), end=self.end.isoformat())
        if self.filters.sources:
            base["source"] = self.filters.sources[0]
        if self.campaign_param:
            base["campaign"] = self.campaign_param
        if self.program_param:
            base["program"] = self.program_param
        base.update(table=self.level, q=self.query, sort=self.sort, dir="desc" if self.desc else "asc", page=self.page)
        base.update(overrides)
        return urlencode({k: v for k, v in base.items() if v not in ("", None)})


def parse_query(
    get: QueryDict, *, default_level: str, levels: tuple[str, ...], campaign: int | None = None
) -> ReportQuery:
    """Raises RangeError with a message for the page on bad dates, ranges, tables or sorts."""
    today = timezone.now().date()
    named = presets(today)
    preset = get.get("preset") or ("custom" if get.get("start") or get.get("end") else "last30")
    if preset == "custom":
        start, end = parse_date(get.get("start"), "start"), parse_date(get.get("end"), "end")
    elif preset in named:
        _, start, end = named[preset]
    else:
        raise RangeError(f"unknown range {preset!r}", "preset")
    check_range(start, end)
    source = get.get("source") or ""
    if source and source not in MediaSource.values:
        raise RangeError(f"unknown source {source!r}", "source")
    campaign_ids: tuple[int, ...] = (campaign,) if campaign else ()
    if not campaign and get.get("campaign"):
        try:
            campaign_ids = (int(str(get.get("campaign"))),)
        except ValueError:
            raise RangeError("campaign must be a campaign id", "campaign") from None
    program_ids: tuple[int, ...] = ()
    if get.get("program"):
        text = str(get.get("program")).strip()
        if not (text.isascii() and text.isdigit() and 0 < int(text) < 2**63):
            raise RangeError("program must be a program id", "program")
        program_ids = (int(text),)
    level = get.get("table") or default_level
    if level not in levels:
        raise RangeError(f"unknown table {level!r}; use one of {', '.join(levels)}", "table")
    sort = get.get("sort") or "spend"
    if sort not in SORTS:
        raise RangeError(f"unknown sort {sort!r}", "sort")
    try:
        page = min(max(1, int(get.get("page") or 1)), MAX_PAGE)
    except ValueError:
        page = 1
    return ReportQuery(
        start=start,
        end=end,
        preset=preset,
        filters=Filters(sources=(source,) if source else (), campaign_ids=campaign_ids, program_ids=program_ids),
        level=level,
        query=(get.get("q") or "").strip()[:100],
        sort=sort,
        desc=(get.get("dir") or "desc") != "asc",
        page=page,
        campaign_param=None if campaign else (campaign_ids[0] if campaign_ids else None),
        program_param=program_ids[0] if program_ids else None,
    )


def _kpi_cards(kpis: dict[str, Any]) -> list[dict[str, Any]]:
    cards = []
    for key, label, up_is_good in KPI_CARDS:
        delta = kpis["deltas"][key]
        pct = delta["pct"]
        tone = ""
        if pct not in (None, "0.00") and up_is_good is not None:
            rising = not pct.startswith("-")
            tone = "good" if rising == up_is_good else "bad"
        cards.append(
            {
                "key": key,
                "label": label,
                "value": kpis["current"][key],
                "previous": kpis["previous"][key],
                "abs": delta["abs"],
                "pct": pct,
                "tone": tone,
            }
        )
    return cards


def _base_context(request: HttpRequest, q: ReportQuery) -> dict[str, Any]:
    today = timezone.now().date()
    return {
        "q": q,
        "presets": [(key, label) for key, (label, _, _) in presets(today).items()],
        "sources": MediaSource.choices,
        "max_days": settings.P360_REPORT_MAX_DAYS,
        "freshness": selectors.data_complete_up_to(request.org),  # type: ignore[attr-defined]
        "base": f"/o/{request.org.slug}/reports/",  # type: ignore[attr-defined]
        "pdf_inline_days": settings.P360_PDF_INLINE_MAX_DAYS,
        "recent_exports": Job.objects.filter(org=request.org, kind=PDF_JOB)[:5],  # type: ignore[attr-defined]
    }


def _campaign_choices(q: ReportQuery) -> list[dict[str, Any]]:
    """The campaign filter's choices: the selected program's campaigns (the drill-down), else all."""
    campaigns = Campaign.objects.order_by("name")
    if q.filters.program_ids:
        campaigns = campaigns.filter(program_id__in=q.filters.program_ids)
    return [dict(row) for row in campaigns.values("id", "name", "source")[:500]]


def _report_page(
    request: HttpRequest, template: str, *, default_level: str, levels: tuple[str, ...], campaign: Campaign | None
) -> HttpResponse:
    try:
        q = parse_query(
            request.GET, default_level=default_level, levels=levels, campaign=campaign.pk if campaign else None
        )
    except RangeError as exc:
        problem: dict[str, Any] = {"error": str(exc), "campaign": campaign, "base": _base(request)}
        return render(request, "reporting/bad_range.html", problem, status=400)
    data = selectors.dashboard_data(q.start, q.end, q.filters)
    page = selectors.table(
        q.level, q.start, q.end, q.filters, query=q.query, sort=q.sort, desc=q.desc, page=q.page, per_page=PER_PAGE
    )
    context: dict[str, Any] = {
        **_base_context(request, q),
        "campaign": campaign,
        "data": data,
        "cards": _kpi_cards(data["kpis"]),
        "table": page,
        "levels": levels,
        "columns": [(key, SORT_LABELS[key]) for key in SORTS if key != "name"],
        "chart": {
            "trend": data["trend"],
            "sources": [{**s, "label": formatting.choice(MediaSource, s["source"])} for s in data["sources"]],
        },
        "campaigns": [] if campaign else _campaign_choices(q),
        "program_choices": [] if campaign else list(Program.objects.order_by("name").values("id", "name")[:500]),
        "selected_program": Program.objects.filter(pk=q.program_param).first() if q.program_param else None,
        # orchestration (issue 14): the dashboard groups by program (a campaign's own page has one program)
        "programs": [] if campaign else selectors.by_program(q.start, q.end, q.filters),
        "no_program": NO_PROGRAM,
        "has_any_data": data["kpis"]["current"]["has_data"] or data["kpis"]["previous"]["has_data"],
    }
    return render(request, template, context)


def dashboard(request: HttpRequest) -> HttpResponse:
    return _report_page(request, "reporting/dashboard.html", default_level="campaign", levels=LEVELS, campaign=None)


def campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    return _report_page(
        request, "reporting/campaign.html", default_level="strategy", levels=LEVELS[1:], campaign=campaign
    )


def summaries(request: HttpRequest) -> HttpResponse:
    base = f"/o/{request.org.slug}/reports/"  # type: ignore[attr-defined]
    period = request.GET.get("period") or "week"
    error = ""
    body: dict[str, Any] | None = None
    if period not in PERIODS:
        error, period = f"unknown period {period!r}; use week or month", "week"
    stored = list(Summary.objects.filter(period=period).order_by("-start")[:26])
    start_text = request.GET.get("start")
    if not error and start_text:
        try:
            start = parse_date(start_text, "start")
            check_period(period, start)
            body = selectors.summary_body(period, start)
            if not body["daily_rows"]:
                error, body = f"No metrics in the {period} starting {start.isoformat()}.", None
        except RangeError as exc:
            error = str(exc)
    elif stored:
        body = selectors.stored_body(stored[0])
    context = {
        "base": base,
        "period": period,
        "stored": stored,
        "body": body,
        "error": error,
        "cards": _kpi_cards({"current": body["totals"], "previous": body["previous_totals"], "deltas": body["deltas"]})
        if body
        else [],
    }
    return render(request, "reporting/summaries.html", context, status=400 if error and start_text else 200)


# --- exports ---------------------------------------------------------------------------------------


def _export_query(request: HttpRequest) -> ReportQuery:
    return parse_query(request.GET, default_level="campaign", levels=CSV_KINDS)


def _record_export(request: HttpRequest, q: Any, fmt: str) -> None:
    record(
        action="reporting.exported",
        actor=_actor(request),
        org=_org(request),
        entity_type="reporting.export",
        after={"format": fmt, "table": q.level, "start": q.start.isoformat(), "end": q.end.isoformat()},
    )


def export_csv(request: HttpRequest) -> HttpResponseBase:
    """A table of the page (or the daily / by-source figures) as CSV, streamed."""
    try:
        q = _export_query(request)
    except RangeError as exc:
        return HttpResponse(f"Cannot export: {exc}.\n", status=400, content_type="text/plain; charset=utf-8")
    _record_export(request, q, "csv")
    response = StreamingHttpResponse(
        _in_schema(request, table_csv(q.level, q.start, q.end, q.filters, q.query)),
        content_type="text/csv; charset=utf-8",
    )
    name = f"{request.org.slug}-{q.level}-{q.start.isoformat()}-to-{q.end.isoformat()}.csv"  # type: ignore[attr-defined]
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def export_xlsx(request: HttpRequest) -> HttpResponse:
    """The same tables as `export_csv`, as an XLSX workbook (numbers are numbers, text is never evaluated)."""
    try:
        q = _export_query(request)
        body = table_xlsx(q.level, q.start, q.end, q.filters, q.query)
    except (RangeError, ValueError) as exc:
        return HttpResponse(f"Cannot export: {exc}.\n", status=400, content_type="text/plain; charset=utf-8")
    _record_export(request, q, "xlsx")
    response = HttpResponse(body, content_type=XLSX_CONTENT_TYPE)
    name = f"{request.org.slug}-{q.level}-{q.start.isoformat()}-to-{q.end.isoformat()}.xlsx"  # type: ignore[attr-defined]
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def summary_export_csv(request: HttpRequest) -> HttpResponseBase:
    period = request.GET.get("period") or ""
    try:
        start = parse_date(request.GET.get("start"), "start")
        check_period(period, start)
    except RangeError as exc:
        return HttpResponse(f"Cannot export: {exc}.\n", status=400, content_type="text/plain; charset=utf-8")
    body = selectors.summary_body(period, start)
    if not body["daily_rows"]:
        return HttpResponse(
            f"Cannot export: no metrics in the {period} starting {start}.\n", status=400, content_type="text/plain"
        )
    record(
        action="reporting.exported",
        actor=_actor(request),
        org=_org(request),
        entity_type="reporting.summary",
        after={"format": "csv", "period": period, "start": start.isoformat()},
    )
    response = StreamingHttpResponse(_in_schema(request, summary_csv(body)), content_type="text/csv; charset=utf-8")
    name = f"{request.org.slug}-{period}-{start.isoformat()}-summary.csv"  # type: ignore[attr-defined]
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_POST
def export_pdf(request: HttpRequest) -> HttpResponse:
    """Short ranges: the PDF at once; longer ones: a job, and its page with progress and the link."""
    org = request.org  # type: ignore[attr-defined]
    try:
        q = parse_query(request.GET, default_level="campaign", levels=LEVELS)
    except RangeError as exc:
        return render(request, "reporting/bad_range.html", {"error": str(exc), "base": _base(request)}, status=400)
    scope = ""
    if q.filters.campaign_ids:
        campaign = Campaign.objects.filter(pk=q.filters.campaign_ids[0]).first()
        scope = f"campaign {campaign.name}" if campaign else "campaign filter"
    if q.filters.program_ids:
        program = Program.objects.filter(pk=q.filters.program_ids[0]).first()
        part = f"program {program.name}" if program else "program filter"
        scope = f"{scope}, {part}" if scope else part
    if q.filters.sources:
        scope = ", ".join([scope, f"source {q.filters.sources[0]}"]) if scope else f"source {q.filters.sources[0]}"
    params = {
        "start": q.start.isoformat(),
        "end": q.end.isoformat(),
        "sources": list(q.filters.sources),
        "campaign_ids": list(q.filters.campaign_ids),
        "program_ids": list(q.filters.program_ids),
        "scope": scope,
    }
    if (q.end - q.start).days + 1 <= settings.P360_PDF_INLINE_MAX_DAYS:
        buffer = io.BytesIO()
        build_pdf(buffer, org_name=org.name, start=q.start, end=q.end, filters=q.filters, scope=scope)
        record(
            action="reporting.exported",
            actor=_actor(request),
            org=org,
            entity_type="reporting.export",
            after={"format": "pdf", **params},
        )
        response = HttpResponse(buffer.getvalue(), content_type="application/pdf")
        response["Content-Disposition"] = (
            f'attachment; filename="{org.slug}-report-{params["start"]}-to-{params["end"]}.pdf"'
        )
        return response
    job = job_start(kind=PDF_JOB, org=org, actor=_actor(request), params=params)
    return redirect(f"{_base(request)}exports/{job.pk}/")


def _export_job(request: HttpRequest, job_id: int) -> Job:
    # Jobs live in the public schema: only this org's PDF jobs are visible under its prefix.
    return get_object_or_404(Job, pk=job_id, org=request.org, kind=PDF_JOB)  # type: ignore[attr-defined]


def export_job(request: HttpRequest, job_id: int) -> HttpResponse:
    return render(request, "reporting/export_job.html", {"job": _export_job(request, job_id), "base": _base(request)})


def export_download(request: HttpRequest, job_id: int) -> HttpResponseBase:
    job = _export_job(request, job_id)
    name = (job.result or {}).get("file", "")
    expected_prefix = f"{org_storage_prefix(request.org.schema_name)}/reports/"  # type: ignore[attr-defined]
    if job.status != JobStatus.SUCCEEDED or not name.startswith(expected_prefix) or not default_storage.exists(name):
        raise Http404("This report is not ready, or it has been removed.")
    record(
        action="reporting.downloaded",
        actor=_actor(request),
        org=_org(request),
        entity=job,
        after={"file": name},
    )
    response = FileResponse(default_storage.open(name, "rb"), content_type="application/pdf", as_attachment=True)
    response["Content-Disposition"] = f'attachment; filename="{name.rsplit("/", 1)[-1]}"'
    return response


def _in_schema(request: HttpRequest, chunks: Iterator[str]) -> Iterator[str]:
    """A streamed body is produced after the view returned, when the middleware has already reset
    the connection to the public schema: enter the org's schema again while producing it."""
    with schema_context(request.org.schema_name):  # type: ignore[attr-defined]
        yield from chunks


def _actor(request: HttpRequest) -> Any:
    return request.user


def _org(request: HttpRequest) -> Any:
    return request.org  # type: ignore[attr-defined]


def _base(request: HttpRequest) -> str:
    return f"/o/{request.org.slug}/reports/"  # type: ignore[attr-defined]
