"""Org API: weekly/monthly summaries (contract: GET /o/<slug>/api/v1/summaries)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reporting.periods import RangeError, check_period, period_end
from reporting.selectors import summary_body


class NoDataError(APIException):
    status_code = 400
    default_code = "no_data"
    default_detail = "No metrics in this period."


class SummaryQuery(serializers.Serializer):
    period = serializers.ChoiceField(choices=["week", "month"], help_text="week (Monday-based) or month")
    start = serializers.DateField(help_text="the period's first day: a Monday, or the 1st of a month")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            check_period(attrs["period"], attrs["start"])
        except RangeError as exc:
            raise serializers.ValidationError({exc.field: str(exc)}) from exc
        return attrs


class Summaries(APIView):
    """One weekly or monthly summary: totals (A.1 precision, decimals as strings), the previous
    period's totals, deltas (`abs`, and `pct` in percent, null when the previous value is zero),
    top campaigns and creatives by conversions and by revenue, underperformers (CTR below
    `thresholds.max_ctr` percent with spend at least `thresholds.min_spend`).

    `stored` says whether the body is the stored summary (`aggregate`, the 07:00 UTC schedule, or
    late data) or was computed now because none is stored yet.
    """

    @extend_schema(parameters=[SummaryQuery], responses={200: dict})
    def get(self, request: Request) -> Response:
        query = SummaryQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        period, start = query.validated_data["period"], query.validated_data["start"]
        body = summary_body(period, start)
        if not body["daily_rows"]:
            exc = NoDataError(f"no metrics between {start.isoformat()} and {period_end(period, start).isoformat()}")
            exc.details = {"period": period, "start": start.isoformat()}  # type: ignore[attr-defined]
            raise exc
        return Response(body)
