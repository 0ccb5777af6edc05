"""Reports by program: attribution `group_by=program` joins REDS campaign ids to programs; the metrics API
groups by program (reconciled with pacing in test_pacing)."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from campaigns.models import Campaign, Program
from campaigns.services import campaign_save, program_save
from tests.attribution.helpers import DAY, conv, imp, insert_events

pytestmark = pytest.mark.django_db


def test_attribution_group_by_program(acme: Any, globex: Any, login: Any, acme_marketer: Any) -> None:
    with schema_context(acme.schema_name):
        p1 = program_save(program=Program(name="North IO", budget="100.00"), actor=None)
        p2 = program_save(program=Program(name="South IO", budget="100.00"), actor=None)
        campaign_save(campaign=Campaign(program=p1, name="A camp", external_id="A", budget="10.00"), actor=None)
        campaign_save(campaign=Campaign(program=p1, name="B camp", external_id="B", budget="10.00"), actor=None)
        campaign_save(campaign=Campaign(program=p2, name="C camp", external_id="C", budget="10.00"), actor=None)
    insert_events(
        acme,
        [imp(-3, "A"), imp(-2, "B"), imp(-1, "C"), conv(0, value=90.0), imp(-1, "Z", user="u2"), conv(0, user="u2")],
    )
    params = {"model": "linear", "start": DAY.isoformat(), "end": DAY.isoformat(), "group_by": "program"}
    body = login(acme_marketer).get("/o/acme/api/v1/attribution", params).json()
    rows = {row["name"]: row for row in body["rows"]}
    assert rows["North IO"]["key"] == str(p1.pk) and rows["North IO"]["conversions"] == pytest.approx(2 / 3)
    assert rows["South IO"]["conversions"] == pytest.approx(1 / 3)
    assert rows["(no program)"]["conversions"] == pytest.approx(1.0)  # campaign Z is unknown
    assert sum(r["conversions"] for r in body["rows"]) == pytest.approx(2.0)
    # globex cannot read acme's report; its own has no programs
    assert login(acme_marketer).get("/o/globex/api/v1/attribution", params).status_code == 404


def test_summaries_group_by_program(acme: Any, manager: Any, login: Any, tmp_path: Any) -> None:
    from tests.ingestion.helpers import SURFSIDE_HEADER, ingest, set_cpm, write_csv

    set_cpm(acme, "10")
    with schema_context(acme.schema_name):
        p = program_save(program=Program(name="Summary IO", budget="1000.00"), actor=None)
        campaign_save(campaign=Campaign(program=p, name="Brand", source="surfside", budget="500.00"), actor=None)
    rows = [
        ["2026-11-16", "Brand", "S", "P", "C", "1000", "5", "1", "0"],
        ["2026-11-17", "Other", "S", "P", "C", "500", "0", "0", "0"],
    ]
    ingest("surfside", str(write_csv(tmp_path / "s.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    body = login(manager).get("/o/acme/api/v1/summaries", {"period": "week", "start": "2026-11-16"}).json()
    programs = {row["program"]: row["spend"] for row in body["by_program"]}
    assert programs == {"Summary IO": "10.00", None: "5.00"}
