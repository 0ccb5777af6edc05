"""The orchestration lists: filters that filter (a bad value is the error body, never ignored), the API's shared
bounded pagination, and no data of another organisation whatever id is asked for."""

from __future__ import annotations

from typing import Any

import pytest

from tests.orchestration.helpers import api, tree

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_trees(acme: Any) -> dict[str, Any]:
    first = tree(acme, items=("100.00", "200.00"))
    second = tree(acme, items=("50.00",), status="draft")
    return {"first": first, "second": second}


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_line_item_filters_filter(acme, manager, login, two_trees):
    client = login(manager)
    first, second = two_trees["first"], two_trees["second"]
    assert sorted(_ids(api(client, acme, "get", "line-items", campaign=first["campaign"]))) == first["line_items"]
    assert _ids(api(client, acme, "get", "line-items", program=second["program"])) == second["line_items"]
    assert _ids(api(client, acme, "get", "line-items", status="draft")) == second["line_items"]
    assert _ids(api(client, acme, "get", "line-items", campaign=first["campaign"], status="draft")) == []
    assert _ids(api(client, acme, "get", "line-items", campaign=987654)) == []  # an unknown id: nothing
    assert len(_ids(api(client, acme, "get", "line-items"))) == 3


def test_campaign_list_filters_by_program_and_status(acme, manager, login, two_trees):
    client = login(manager)
    assert _ids(api(client, acme, "get", "campaigns", program=two_trees["first"]["program"])) == [
        two_trees["first"]["campaign"]
    ]
    drafts = api(client, acme, "get", "campaigns", status="draft").json()["results"]
    assert two_trees["second"]["campaign"] in [c["id"] for c in drafts]
    assert {c["status"] for c in drafts} == {"draft"}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("line-items", {"campaign": "abc"}, "campaign"),
        ("line-items", {"campaign": "-1"}, "campaign"),
        ("line-items", {"campaign": "1e3"}, "campaign"),
        ("line-items", {"campaign": "99999999999999999999999"}, "campaign"),
        ("line-items", {"program": "x"}, "program"),
        ("line-items", {"status": "flying"}, "status"),
        ("campaigns", {"program": "abc"}, "program"),
        ("campaigns", {"status": "nope"}, "status"),
        ("programs", {"status": "active"}, "status"),  # not a filter of this list: said, not ignored
        ("line-items", {"limit": "abc"}, "limit"),
        ("programs", {"offset": "-3"}, "offset"),
    ],
)
def test_bad_filter_values_are_the_error_body(acme, manager, login, two_trees, path, params, field):
    response = api(login(manager), acme, "get", path, **params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] and field in error["details"]["fields"], error


def test_program_and_line_item_lists_are_paginated(acme, manager, login, two_trees):
    client = login(manager)
    page = api(client, acme, "get", "line-items", limit=2).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and "offset=2" in page["next"]
    rest = api(client, acme, "get", "line-items", limit=2, offset=2).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    programs = api(client, acme, "get", "programs", limit=1).json()
    assert programs["count"] == 2 and len(programs["results"]) == 1
    assert api(client, acme, "get", "programs", limit=5000).json()["count"] == 2  # capped, not refused


def test_another_orgs_ids_give_nothing_of_its_data(acme, globex, manager, globex_marketer, login, two_trees):
    """Each org's ids live in its own schema: globex asking for acme's program or campaign id sees globex's rows
    only (here none), and cannot list acme's at all."""
    other = login(globex_marketer)
    first = two_trees["first"]
    assert _ids(api(other, globex, "get", "line-items", program=first["program"])) == []
    assert _ids(api(other, globex, "get", "line-items", campaign=first["campaign"])) == []
    assert _ids(api(other, globex, "get", "campaigns", program=first["program"])) == []
    assert _ids(api(other, globex, "get", "programs")) == []
    for path in ("programs", "line-items", "campaigns"):
        assert api(other, acme, "get", path).status_code == 404
