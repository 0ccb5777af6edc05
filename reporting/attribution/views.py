"""The model comparison page (/o/<slug>/reports/attribution/) and its CSV download."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from urllib.parse import urlencode

import polars as pl
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from p360.core.exports import neutralise_expr
from reporting.attribution import engine, models, selectors

EXPLANATIONS = {
    "first_touch": "All the credit goes to the first ad the person saw or clicked in the lookback window.",
    "last_touch": "All the credit goes to the last ad before the conversion.",
    "linear": "Every ad on the path gets an equal share.",
    "time_decay": "Ads closer to the conversion get more: a touch one half-life older counts half as much.",
    "position_based": "40 % to the first ad, 40 % to the last, 20 % shared by the ones in between "
    "(one ad: 100 %; two ads: 50/50).",
    "markov": "Data-driven: a chain learned from every path, converting or not. Each key gets credit in "
    "proportion to how many conversions would be lost if it were removed (its removal effect).",
}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError as exc:
        raise engine.BadParams("lookback_days", "lookback_days must be a whole number") from exc


def _params(request: HttpRequest) -> engine.Params:
    """Page controls -> parameters; the range defaults to the 30 days ending on the newest REDS day."""
    get = request.GET
    default_start, default_end = selectors.default_range()
    try:
        start = dt.date.fromisoformat(get["start"]) if get.get("start") else default_start
    except ValueError as exc:
        raise engine.BadParams("start", "start is not a date (YYYY-MM-DD)") from exc
    try:
        end = dt.date.fromisoformat(get["end"]) if get.get("end") else default_end
    except ValueError as exc:
        raise engine.BadParams("end", "end is not a date (YYYY-MM-DD)") from exc
    try:
        half_life = float(get.get("half_life_days") or 7)
    except ValueError as exc:
        raise engine.BadParams("half_life_days", "half_life_days must be a number") from exc
    return engine.check(
        engine.Params(
            start=start,
            end=end,
            group_by=get.get("group_by") or "campaign",
            lookback_days=_int(get.get("lookback_days"), 30),
            half_life_days=half_life,
        )
    )


def comparison(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows = keys, with each model's conversions/revenue/ROAS side by side (order: markov's credit)."""
    by_key: dict[str, dict[str, Any]] = {}
    for model in models.MODELS:
        for row in result["results"][model]["rows"]:
            entry = by_key.setdefault(
                row["key"], {"key": row["key"], "name": row["name"], "cost": row["cost"], "models": {}}
            )
            entry["models"][model] = row
    for entry in by_key.values():
        entry["cells"] = [entry["models"][model] for model in models.MODELS]
    return sorted(by_key.values(), key=lambda e: (-e["models"]["markov"]["conversions"], e["key"]))


def _explained() -> list[tuple[str, str, str]]:
    return [(m, models.LABELS[m], EXPLANATIONS[m]) for m in models.MODELS]


def attribution_page(request: HttpRequest) -> HttpResponse:
    form = {key: request.GET.get(key, "") for key in ("start", "end", "group_by", "lookback_days", "half_life_days")}
    try:
        params = _params(request)
    except engine.BadParams as exc:
        failed = {
            "error": str(exc),
            "error_field": exc.field,
            "form": form,
            "groups": engine.GROUPS,
            "models": _explained(),
        }
        return render(request, "reporting/attribution.html", failed, status=400)
    result = engine.run(params)
    rows = comparison(result)
    chart_rows = rows[:12]  # a readable chart; the table and the CSV have every key
    chart = {
        "labels": [row["name"] for row in chart_rows],
        "datasets": [
            {"label": models.LABELS[m], "data": [row["models"][m]["conversions"] for row in chart_rows]}
            for m in models.MODELS
        ],
    }
    query = urlencode({**params.public()})
    context: dict[str, Any] = {
        "params": params,
        "form": {**form, **{k: str(v) for k, v in params.public().items()}},
        "groups": engine.GROUPS,
        "group_label": params.group_by.replace("_", " "),
        "result": result,
        "rows": rows,
        "chart": chart,
        "models": _explained(),
        "csv_url": f"export.csv?{query}",
        "empty": result["totals"]["all_conversions"] == 0 and not rows,
    }
    return render(request, "reporting/attribution.html", context)


def attribution_csv(request: HttpRequest) -> HttpResponse:
    """The comparison as CSV: one row per key, per model conversions, revenue and ROAS (text neutralised)."""
    try:
        params = _params(request)
    except engine.BadParams as exc:
        return HttpResponse(f"{exc.field}: {exc}\n", status=400, content_type="text/plain")
    result = engine.run(params)
    data: dict[str, list[Any]] = {"key": [], "name": [], "cost": []}
    for model in models.MODELS:
        for column in ("conversions", "revenue", "roas"):
            data[f"{model}_{column}"] = []
    for row in comparison(result):
        data["key"].append(row["key"])
        data["name"].append(row["name"])
        data["cost"].append(row["cost"])
        for model in models.MODELS:
            for column in ("conversions", "revenue", "roas"):
                data[f"{model}_{column}"].append(row["models"][model][column])
    schema: dict[str, Any] = {name: pl.Float64 for name in data}
    schema.update(key=pl.String, name=pl.String)
    frame = pl.DataFrame(data, schema=schema).with_columns(
        neutralise_expr(pl.col("key")).alias("key"), neutralise_expr(pl.col("name")).alias("name")
    )
    buffer = io.BytesIO()
    frame.write_csv(buffer)
    org = request.org.slug  # type: ignore[attr-defined]
    name = f"attribution-{org}-{params.group_by}-{params.start.isoformat()}-{params.end.isoformat()}.csv"
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
