"""Story 6.1 in the builder: Bombora over the last 4 and 12 weeks (`bombora_max_4w:<topic>`,
`bombora_rise_12w:<topic>`), through the preview (polars) and saving (SQL materialisation), with known values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django_tenants.utils import schema_context

from tests.audiences.builder_helpers import WEEK, fresh_cache, load_bombora, make_imported  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
API = "/o/acme/api/v1"


def _weeks_ago(n: int) -> dt.date:
    return WEEK - dt.timedelta(days=7 * n)


@pytest.fixture
def weeks(acme: Any) -> None:
    with schema_context("org_acme"):
        make_imported("Accounts", [{"domain": d} for d in ("a.com", "b.com", "c.com", "d.com")] + [{"domain": None}])
    load_bombora([("a.com", "Cloud", 30), ("b.com", "Cloud", 70), ("d.com", "Cloud", 50)])  # current week
    load_bombora([("c.com", "Cloud", 80), ("d.com", "Cloud", 10)], week=_weeks_ago(1))
    load_bombora([("a.com", "Cloud", 65)], week=_weeks_ago(3))  # still inside the last 4 weeks
    load_bombora([("a.com", "Cloud", 20), ("d.com", "Cloud", 95)], week=_weeks_ago(7))  # inside 12, not 4
    load_bombora([("a.com", "Cloud", 90), ("b.com", "Cloud", 0)], week=_weeks_ago(12))  # outside both


CASES = [
    ({"field": "bombora_max_4w:Cloud", "operator": "gte", "value": 60}, 3),  # a (65, 3 weeks ago), b (70), c (80)
    ({"field": "bombora_rise_12w:Cloud", "operator": "gte", "value": 10}, 1),  # a: 30 - 20; d: 50 - 95 = -45
    ({"field": "bombora_rise_12w:Cloud", "operator": "lt", "value": 0}, 1),  # d
    ({"field": "bombora_rise_12w:Cloud", "operator": "is_null"}, 3),  # b, c (no earlier/current week), no domain
    ({"op": "not", "children": [{"field": "bombora_max_4w:cloud", "operator": "gte", "value": 60}]}, 2),
    ({"field": "bombora:Cloud", "operator": "gte", "value": 60}, 1),  # the current week only: b
]


@pytest.mark.parametrize(("tree", "expected"), CASES)
def test_multi_week_bombora_fields_in_polars_and_sql(
    weeks: None, acme_marketer: Any, login: Any, tree: dict[str, Any], expected: int
) -> None:
    client = login(acme_marketer)
    preview = client.post(f"{API}/audiences/preview", {"tree": tree}, content_type="application/json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["count"] == expected
    saved = client.post(f"{API}/audiences", {"name": f"w {tree}", "tree": tree}, content_type="application/json")
    assert saved.status_code == 201, saved.content
    assert saved.json()["count"] == expected


def test_the_catalogue_lists_the_multi_week_fields_and_unknown_topics_are_400(
    weeks: None, acme_marketer: Any, login: Any
) -> None:
    client = login(acme_marketer)
    names = {f["name"] for f in client.get(f"{API}/fields").json()["fields"]}
    assert {"bombora_max_4w:<topic>", "bombora_rise_12w:<topic>"} <= names
    bad = client.post(f"{API}/audiences/preview", {"tree": {"field": "bombora_rise_12w:Nope", "operator": "gte",
                                                            "value": 1}}, content_type="application/json")  # fmt: skip
    assert bad.status_code == 400 and "unknown Bombora topic 'Nope'" in bad.json()["error"]["message"]


@pytest.fixture
def signals(acme: Any) -> None:
    """Story 6.1: this week's research volume and surge indicator (None: the file did not carry them)."""
    with schema_context("org_acme"):
        make_imported("Signals", [{"domain": d} for d in ("a.com", "b.com", "c.com", "d.com")] + [{"domain": None}])
    load_bombora(
        [
            ("a.com", "Cloud", 30, 1200, True),  # Bombora flags a surge the score alone would not
            ("b.com", "Cloud", 70, 40, False),
            ("c.com", "Cloud", 65, None, None),  # a row without the optional columns
        ]
    )
    load_bombora([("d.com", "Cloud", 90, 9000, True)], week=_weeks_ago(1))  # last week's: not this week's


SIGNAL_CASES = [
    ({"field": "bombora_volume:Cloud", "operator": "gte", "value": 100}, 1),  # a
    ({"field": "bombora_volume:cloud", "operator": "lt", "value": 100}, 1),  # b
    ({"field": "bombora_volume:Cloud", "operator": "is_null"}, 3),  # c (no volume), d (last week only), no domain
    ({"field": "bombora_surge:Cloud", "operator": "eq", "value": True}, 1),  # a
    ({"field": "bombora_surge:Cloud", "operator": "neq", "value": True}, 1),  # b (a missing flag is not "not true")
    ({"op": "not", "children": [{"field": "bombora_surge:Cloud", "operator": "eq", "value": True}]}, 4),
]


@pytest.mark.parametrize(("tree", "expected"), SIGNAL_CASES)
def test_research_volume_and_surge_indicator_fields_in_polars_and_sql(
    signals: None, acme_marketer: Any, login: Any, tree: dict[str, Any], expected: int
) -> None:
    client = login(acme_marketer)
    preview = client.post(f"{API}/audiences/preview", {"tree": tree}, content_type="application/json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["count"] == expected
    saved = client.post(f"{API}/audiences", {"name": f"s {tree}", "tree": tree}, content_type="application/json")
    assert saved.status_code == 201, saved.content
    assert saved.json()["count"] == expected


def test_the_catalogue_lists_volume_and_surge_with_their_types(signals: None, acme_marketer: Any, login: Any) -> None:
    client = login(acme_marketer)
    fields = {f["name"]: f for f in client.get(f"{API}/fields").json()["fields"]}
    assert fields["bombora_volume:<topic>"]["type"] == "number"
    assert fields["bombora_surge:<topic>"]["type"] == "boolean"
    assert "gte" not in fields["bombora_surge:<topic>"]["operators"]
    bad = client.post(f"{API}/audiences/preview", {"tree": {"field": "bombora_surge:Cloud", "operator": "gte",
                                                            "value": 1}}, content_type="application/json")  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["details"]["path"] == "operator"
