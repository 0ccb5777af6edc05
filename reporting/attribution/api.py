"""GET /o/<slug>/api/v1/attribution (the contract's attribution API; `model=all` is an extension)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reporting.attribution import engine, models

MODEL_CHOICES = (*models.MODELS, "all")


class AttributionQuery(serializers.Serializer):
    model = serializers.CharField(help_text=f"{' | '.join(MODEL_CHOICES)}")
    start = serializers.DateField(help_text="first conversion day, UTC (YYYY-MM-DD)")
    end = serializers.DateField(help_text="last conversion day, inclusive (YYYY-MM-DD)")
    group_by = serializers.CharField(
        required=False, default="campaign", help_text="campaign | line_item | audience | program"
    )
    lookback_days = serializers.IntegerField(required=False, default=30, help_text="1-90 days before each conversion")
    half_life_days = serializers.FloatField(required=False, default=7.0, help_text="time decay half-life (> 0)")

    def validate_model(self, value: str) -> str:
        if value not in MODEL_CHOICES:
            raise serializers.ValidationError(f"unknown model {value!r}; use one of {', '.join(MODEL_CHOICES)}")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        model = attrs["model"]
        params = engine.Params(
            start=attrs["start"],
            end=attrs["end"],
            models=models.MODELS if model == "all" else (model,),
            group_by=attrs["group_by"],
            lookback_days=attrs["lookback_days"],
            half_life_days=attrs["half_life_days"],
        )
        try:
            attrs["params"] = engine.check(params)
        except engine.BadParams as exc:
            raise serializers.ValidationError({exc.field: str(exc)}) from exc
        return attrs


class Attribution(APIView):
    """Conversions (fractional credits), revenue, cost and ROAS by campaign, line item or audience.

    Paths are built per user_id from REDS impressions and clicks before each conversion within the
    lookback window; conversions without a user id or without a touch are reported in
    `unattributed`. `model=all` returns every model under `models`.
    """

    @extend_schema(parameters=[AttributionQuery], responses={200: dict})
    def get(self, request: Request) -> Response:
        query = AttributionQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params: engine.Params = query.validated_data["params"]
        result = engine.run(params)
        if query.validated_data["model"] == "all":
            return Response(
                {
                    "model": "all",
                    "models": result["results"],
                    "totals": result["totals"],
                    "unattributed": result["unattributed"],
                    "params": result["params"],
                    "paths": result["paths"],
                }
            )
        return Response(engine.single(result, params.models[0]))
