"""The PDF report (ReportLab): org, period, KPI summary with deltas, a chart, tables across pages.

Tables are `LongTable`s with `repeatRows=1` (the header is repeated on every page they continue on);
every page carries "Page n of N" (a canvas that lays out all pages before numbering them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from django.utils import timezone
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import KeepTogether, LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

from p360.core import formatting
from reporting import selectors
from reporting.exports import NO_PROGRAM
from reporting.selectors import Filters

NO_FILTERS = Filters()
MAX_TABLE_ROWS = 5000  # per table; more is a spreadsheet's job (the CSV has every row)
BLUE = colors.HexColor("#1769c2")
GREEN = colors.HexColor("#177245")
LINE = colors.HexColor("#e3e6ee")
KPI_ROWS = [
    ("impressions", "Impressions"),
    ("clicks", "Clicks"),
    ("conversions", "Conversions"),
    ("conversion_revenue", "Revenue"),
    ("spend", "Spend"),
    ("ctr", "CTR %"),
    ("cpc", "CPC"),
    ("cpa", "CPA"),
    ("roas", "ROAS %"),
]
TABLE_METRICS = ["impressions", "clicks", "conversions", "conversion_revenue", "spend", "ctr", "cpa", "roas"]
TABLE_HEAD = ["Impr.", "Clicks", "Conv.", "Revenue", "Spend", "CTR %", "CPA", "ROAS %"]


class NumberedCanvas(pdfcanvas.Canvas):
    """Defers each page until the end so that every page can say "Page n of N"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._saved: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._saved.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._saved)
        for state in self._saved:
            self.__dict__.update(state)
            self.setFont("Helvetica", 8)
            self.setFillColor(colors.grey)
            width, _ = self._pagesize
            self.drawRightString(width - 15 * mm, 8 * mm, f"Page {self._pageNumber} of {total}")
            self.drawString(15 * mm, 8 * mm, getattr(self, "_p360_footer", ""))
            super().showPage()
        super().save()


def _cell(value: Any, key: str = "") -> str:
    """A figure as pages show it (p360.core.formatting); exact values are in the CSV exports."""
    return formatting.metric(key, value) if key else formatting.DASH if value is None else str(value)


def _heading(text: str, style: Any) -> Paragraph:
    """A section heading that never ends a page: it moves to the next page with its table."""
    heading = Paragraph(text, style)
    heading.keepWithNext = True
    return heading


def _grid(header: list[str], rows: list[list[Any]], widths: list[float] | None = None) -> LongTable:
    table = LongTable([header, *rows], repeatRows=1, colWidths=widths)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
                ("FONT", (0, 1), (-1, -1), "Helvetica", 8),
                ("TEXTCOLOR", (0, 0), (-1, 0), colors.HexColor("#5b6478")),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, BLUE),
                ("LINEBELOW", (0, 1), (-1, -1), 0.25, LINE),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f7fb")]),
            ]
        )
    )
    return table


def _chart(trend: list[dict[str, Any]]) -> Drawing:
    drawing = Drawing(250 * mm, 70 * mm)
    chart = HorizontalLineChart()
    chart.x, chart.y, chart.width, chart.height = 15 * mm, 12 * mm, 225 * mm, 50 * mm
    spend = [float(p["spend"]) for p in trend]
    revenue = [float(p["conversion_revenue"]) for p in trend]
    chart.data = [spend, revenue]
    chart.lines[0].strokeColor, chart.lines[1].strokeColor = BLUE, GREEN
    chart.lines[0].strokeWidth = chart.lines[1].strokeWidth = 1.5
    step = max(1, len(trend) // 12)
    chart.categoryAxis.categoryNames = [p["date"][5:] if i % step == 0 else "" for i, p in enumerate(trend)]
    chart.categoryAxis.labels.fontSize = chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max([*spend, *revenue, 1.0]) * 1.1
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = 20 * mm, 68 * mm
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.fontSize = 8
    legend.colorNamePairs = [(BLUE, "Spend"), (GREEN, "Revenue")]
    drawing.add(legend)
    drawing.add(String(120 * mm, 66 * mm, "Daily spend and revenue", fontSize=9, fillColor=colors.black))
    return drawing


def build_pdf(
    out: BinaryIO,
    *,
    org_name: str,
    start: dt.date,
    end: dt.date,
    filters: Filters = NO_FILTERS,
    scope: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the report to `out`; returns {"rows": table rows written, "truncated": [tables cut]}."""
    styles = getSampleStyleSheet()
    steps = 7
    step = 0

    def tick() -> None:
        nonlocal step
        step += 1
        if progress:
            progress(step, steps)

    data = selectors.dashboard_data(start, end, filters)
    kpis = data["kpis"]
    tick()
    story: list[Any] = [
        Paragraph(f"{org_name}: performance report", styles["Title"]),
        Paragraph(
            f"Period {formatting.day(start)} to {formatting.day(end)} ({(end - start).days + 1} days), compared with "
            f"{formatting.day(kpis['previous_start'])} to {formatting.day(kpis['previous_end'])}"
            f"{' · ' + scope if scope else ''}. Generated {formatting.moment(timezone.now())} UTC.",
            styles["Normal"],
        ),
        Spacer(1, 4 * mm),
    ]
    kpi_rows = []
    for key, label in KPI_ROWS:
        delta = kpis["deltas"][key]
        kpi_rows.append(
            [
                label,
                _cell(kpis["current"][key], key),
                _cell(kpis["previous"][key], key),
                _cell(delta["abs"], key),
                formatting.signed_percent(delta["pct"]),
            ]
        )
    key_figures = _grid(["Metric", "This period", "Previous period", "Change", "Change %"], kpi_rows)
    story += [KeepTogether([Paragraph("Key figures", styles["Heading2"]), key_figures]), Spacer(1, 5 * mm)]
    story += [_chart(data["trend"]), Spacer(1, 3 * mm)]
    tick()
    rows_written = 0
    truncated = []
    # orchestration (issue 14): the programs first (a handful of rows: one table, never truncated)
    programs = [
        [
            # escaped: a Paragraph reads its text as markup, and a program name may hold "<" or "&"
            Paragraph(escape(row["program"] if row["program_id"] is not None else NO_PROGRAM), styles["BodyText"]),
            *[_cell(row[m], m) for m in TABLE_METRICS],
        ]
        for row in selectors.by_program(start, end, filters)
    ]
    section: list[Any] = [_heading(f"Programs ({formatting.count(len(programs))})", styles["Heading2"])]
    if programs:
        section.append(_grid(["Name", *TABLE_HEAD], programs, widths=[95 * mm, *([22 * mm] * len(TABLE_HEAD))]))
    else:
        section.append(Paragraph("No data in this period.", styles["Italic"]))
    story.append(KeepTogether(section) if len(programs) <= 25 else section[0])
    if len(programs) > 25:
        story.extend(section[1:])
    rows_written += len(programs)
    tick()
    for level, title in (("campaign", "Campaigns"), ("strategy", "Strategies"), ("creative", "Creatives")):
        page = selectors.table(level, start, end, filters, sort="spend", per_page=MAX_TABLE_ROWS)
        body = []
        for row in page.rows:
            name = row[level] if level == "campaign" else f"{row[level]} ({row['campaign']})"
            body.append([Paragraph(name, styles["BodyText"]), *[_cell(row[m], m) for m in TABLE_METRICS]])
        # The heading (and the truncation note) stay with their table: a short table moves whole to the next
        # page; a long one starts under its heading and repeats its header row on the pages it continues on.
        section = [_heading(f"{title} ({formatting.count(page.total)})", styles["Heading2"])]
        if page.total > MAX_TABLE_ROWS:
            truncated.append(level)
            note = Paragraph(
                f"The {MAX_TABLE_ROWS:,} with the most spend; the CSV export has all rows.", styles["Italic"]
            )
            note.keepWithNext = True
            section.append(note)
        if body:
            section.append(_grid(["Name", *TABLE_HEAD], body, widths=[95 * mm, *([22 * mm] * len(TABLE_HEAD))]))
        else:
            section.append(Paragraph("No data in this period.", styles["Italic"]))
        # (a KeepTogether nested inside keepWithNext's own grouping strands the heading: one level only)
        story.append(KeepTogether(section) if len(body) <= 25 else section[0])
        if len(body) > 25:
            story.extend(section[1:])
        rows_written += len(body)
        tick()
    doc = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=12 * mm,
        bottomMargin=15 * mm,
        title=f"{org_name} report {start.isoformat()} to {end.isoformat()}",
        author="P360",
    )
    footer = f"{org_name} · {formatting.day(start)} to {formatting.day(end)}"

    def canvasmaker(*args: Any, **kwargs: Any) -> NumberedCanvas:
        made = NumberedCanvas(*args, **kwargs)
        made._p360_footer = footer  # type: ignore[attr-defined]
        return made

    doc.build(story, canvasmaker=canvasmaker)
    tick()
    return {"rows": rows_written, "truncated": truncated, "pages": doc.page}
