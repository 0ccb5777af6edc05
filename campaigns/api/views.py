"""Org API: campaigns (read)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.api.orchestration import CampaignCreateMixin, ListFilters, list_filters
from campaigns.models import Campaign, MediaSource, Program
from campaigns.selectors import GROUPS, metrics_report

MAX_METRICS_DAYS = 1100


class CampaignSerializer(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = [
            "id",
            "program",
            "name",
            "source",
            "external_id",
            "status",
            "start_date",
            "end_date",
            "budget",
            "currency",
            "created_at",
            "updated_at",
        ]


class CampaignList(CampaignCreateMixin, generics.ListAPIView):
    """Campaigns, paginated; `?program=<id>` and `?status=` filter (a bad value is a 400, never ignored)."""

    serializer_class = CampaignSerializer

    def get_queryset(self) -> Any:
        filters = list_filters(self.request, ("program", "status"))
        campaigns = Campaign.objects.order_by("-start_date", "name", "pk")
        if "program" in filters:
            campaigns = campaigns.filter(program_id=filters["program"])
        if "status" in filters:
            campaigns = campaigns.filter(status=filters["status"])
        return campaigns

    @extend_schema(parameters=[ListFilters])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class CampaignDetail(generics.RetrieveAPIView):
    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer


def _ids(value: str, name: str) -> list[int]:
    """Comma-separated whole numbers (ids), each a PostgreSQL bigint, each once (in the order given)."""
    parts = [v.strip() for v in value.split(",") if v.strip()]
    if not parts or not all(p.isascii() and p.isdigit() and 0 < int(p) < 2**63 for p in parts):
        raise serializers.ValidationError(f"{name} takes ids (whole numbers, comma-separated)")
    return list(dict.fromkeys(int(p) for p in parts))


class CommaListField(serializers.CharField):
    """A comma-separated list that may also be given by repeating the parameter (`program=1&program=2` is
    `program=1,2`): a repeated parameter used to keep its last value only, silently dropping the others."""

    def get_value(self, dictionary: Any) -> Any:
        if hasattr(dictionary, "getlist") and len(values := dictionary.getlist(self.field_name)) > 1:
            return ",".join(values)
        return super().get_value(dictionary)


class MetricsQuery(serializers.Serializer):
    start = serializers.DateField(help_text="first day (YYYY-MM-DD)")
    end = serializers.DateField(help_text="last day, inclusive (YYYY-MM-DD)")
    group_by = serializers.CharField(
        required=False,
        default="date",
        help_text="date | program | campaign | strategy | placement | creative | source (comma-separated for several)",
    )
    source = CommaListField(required=False, help_text="only these sources (comma-separated or repeated)")  # type: ignore[assignment]
    campaign_id = CommaListField(required=False, help_text="only these campaign ids (comma-separated or repeated)")
    program = CommaListField(
        required=False,
        help_text="only the campaigns of these programs: ids, comma-separated or repeated (an unknown id is a 400)",
    )

    def validate_group_by(self, value: str) -> list[str]:
        groups = [g.strip() for g in value.split(",") if g.strip()]
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            raise serializers.ValidationError(f"unknown group {unknown[0]!r}; use one of {', '.join(GROUPS)}")
        return groups

    def validate_source(self, value: str) -> list[str]:
        sources = [s.strip() for s in value.split(",") if s.strip()]
        unknown = [s for s in sources if s not in MediaSource.values]
        if unknown:
            raise serializers.ValidationError(f"unknown source {unknown[0]!r}")
        return sources

    def validate_campaign_id(self, value: str) -> list[int]:
        return _ids(value, "campaign_id")

    def validate_program(self, value: str) -> list[int]:
        """Each id must be a program of this organisation (its schema): another org's id, or no program's, is
        refused by name rather than answered with empty rows that look like a program without metrics."""
        ids = _ids(value, "program")
        known = set(Program.objects.filter(pk__in=ids).values_list("pk", flat=True))
        unknown = [pk for pk in ids if pk not in known]
        if unknown:
            listed = ", ".join(str(pk) for pk in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            noun = "program" if len(unknown) == 1 else "programs"
            raise serializers.ValidationError(f"unknown {noun} {listed} (not a program of this organisation)")
        return ids

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "end is before start"})
        if (attrs["end"] - attrs["start"]).days > MAX_METRICS_DAYS:
            raise serializers.ValidationError({"end": f"a range covers at most {MAX_METRICS_DAYS} days"})
        return attrs


class Metrics(APIView):
    """Daily metrics of the organisation, grouped, with totals (document 004, appendix A.1).

    Decimals are strings: spend and revenue 2 places, CTR 6, CPC/CPA/ROAS 4 (half-up rounding of
    the exact values); a division by zero gives null. Spend = impressions / 1000 x the CPM in force.
    """

    @extend_schema(parameters=[MetricsQuery], responses={200: dict})
    def get(self, request: Request) -> Response:
        query = MetricsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        report = metrics_report(
            data["start"],
            data["end"],
            data["group_by"],
            sources=data.get("source"),
            campaign_ids=data.get("campaign_id"),
            program_ids=data.get("program"),
        )
        return Response(report)
