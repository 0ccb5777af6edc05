"""Org admin: the stored summaries (read-only; written by `aggregate`, the schedule and late data)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html

from p360.core.admin_base import ReadOnlyAdmin
from p360.core.admin_sites import org_admin
from reporting.models import Summary


@admin.register(Summary, site=org_admin)
class SummaryAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "end", "spend", "conversions", "spend_change", "generated_by", "generated_at", "page"]
    list_filter = ["period", "generated_by"]
    date_hierarchy = "start"
    list_per_page = 50
    exclude = ["totals", "previous", "deltas", "top_campaigns", "top_creatives", "underperformers", "thresholds"]
    readonly_fields = ["figures"]

    @admin.display(description="Spend")
    def spend(self, obj: Summary) -> str:
        return str(obj.totals.get("spend"))

    @admin.display(description="Conversions")
    def conversions(self, obj: Summary) -> Any:
        return obj.totals.get("conversions")

    @admin.display(description="Spend vs previous")
    def spend_change(self, obj: Summary) -> str:
        pct = (obj.deltas.get("spend") or {}).get("pct")
        return "—" if pct is None else f"{pct} %"

    @admin.display(description="Report")
    def page(self, obj: Summary) -> str:
        return format_html(
            '<a href="../../../reports/summaries/?period={}&amp;start={}">open</a>',
            obj.period,
            obj.start.isoformat(),
        )

    @admin.display(description="Totals, previous and deltas")
    def figures(self, obj: Summary) -> str:
        rows = "".join(
            format_html(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                key,
                obj.totals.get(key),
                obj.previous.get(key),
                (obj.deltas.get(key) or {}).get("pct"),
            )
            for key in obj.totals
        )
        return format_html(
            "<table><tr><th>metric</th><th>value</th><th>previous</th><th>change %</th></tr>{}</table>", rows
        )  # type: ignore[arg-type]
