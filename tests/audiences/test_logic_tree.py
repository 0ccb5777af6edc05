"""Tree validation: every bad input names the node's path; deep and large trees; junk JSON never gives a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.catalogue import make_resolver
from audiences.logic.tree import MAX_DEPTH, MAX_NODES, TreeError, parse
from tests.audiences.builder_helpers import fresh_cache, make_imported  # noqa: F401

COND = {"field": "country", "operator": "eq", "value": "US"}


def _errors(tree: Any, custom: dict[str, str] | None = None) -> list[dict[str, str]]:
    with pytest.raises(TreeError) as caught:
        parse(tree, make_resolver(custom or {"score": "integer", "since": "date", "vip": "boolean"}), audience_ids={1})
    return caught.value.errors


def _nested(depth: int) -> dict[str, Any]:
    tree: dict[str, Any] = COND
    for level in range(depth):
        tree = {"op": "not" if level % 3 == 0 else "and", "children": [tree]}
    return tree


@pytest.mark.django_db
class TestValidation:
    def test_unknown_field(self) -> None:
        errors = _errors({"op": "and", "children": [COND, {"field": "shoe_size", "operator": "eq", "value": 1}]})
        assert errors == [{"path": "children[1].field", "message": "unknown field 'shoe_size'"}]

    def test_unknown_bombora_topic(self) -> None:
        errors = _errors({"field": "bombora:Nope", "operator": "gte", "value": 60})
        assert errors[0]["path"] == "field" and "Bombora topic 'Nope'" in errors[0]["message"]

    def test_operator_that_does_not_fit_the_type(self) -> None:
        tree = {
            "op": "or",
            "children": [COND, {"op": "and", "children": [{"field": "revenue", "operator": "contains", "value": "1"}]}],
        }
        errors = _errors(tree)
        assert errors[0]["path"] == "children[1].children[0].operator"
        assert "does not fit number field 'revenue'" in errors[0]["message"]
        assert _errors({"field": "custom.vip", "operator": "gt", "value": True})[0]["path"] == "operator"
        assert _errors({"field": "country", "operator": "like", "value": "x"})[0]["path"] == "operator"

    @pytest.mark.parametrize(
        ("condition", "message"),
        [
            ({"field": "revenue", "operator": "gt", "value": "10"}, "takes numbers"),
            ({"field": "revenue", "operator": "gt", "value": True}, "takes numbers"),
            ({"field": "revenue", "operator": "gt"}, "a value is required"),
            ({"field": "revenue", "operator": "between", "value": [5]}, "between takes [low, high]"),
            ({"field": "revenue", "operator": "between", "value": [9, 5]}, "low <= high"),
            ({"field": "revenue", "operator": "in", "value": 5}, "takes a list"),
            ({"field": "revenue", "operator": "in", "value": []}, "at least one value"),
            ({"field": "revenue", "operator": "eq", "value": 1e400}, "finite"),
            ({"field": "country", "operator": "eq", "value": 5}, "takes text values"),
            ({"field": "country", "operator": "in", "value": ["US", None]}, "a value is required"),
            ({"field": "custom.since", "operator": "gt", "value": "2024-13-01"}, "is not a date"),
            ({"field": "custom.since", "operator": "gt", "value": "yesterday"}, "is not a date"),
            ({"field": "custom.vip", "operator": "eq", "value": "yes"}, "true or false"),
            ({"field": "audience", "operator": "in", "value": [2]}, "no audience with id 2"),
            ({"field": "audience", "operator": "eq", "value": 1}, "operator"),
        ],
    )
    def test_wrong_values(self, condition: dict[str, Any], message: str) -> None:
        errors = _errors({"op": "and", "children": [COND, condition]})
        assert errors[0]["path"] in ("children[1].value", "children[1].operator")
        assert message in errors[0]["message"]

    def test_group_shape_errors(self) -> None:
        assert _errors({"op": "not", "children": [COND, COND]})[0] == {
            "path": "children",
            "message": "a NOT group takes exactly one child (it has 2)",
        }
        assert _errors({"op": "and", "children": []})[0]["path"] == "children"
        assert _errors({"op": "xor", "children": [COND]})[0]["path"] == "op"
        assert _errors({"op": "and", "children": COND})[0]["path"] == "children"
        assert _errors({"op": "and", "children": [COND, 7]})[0]["path"] == "children[1]"
        assert _errors({"op": "and", "field": "x", "children": [COND]})[0]["path"] == ""
        assert _errors([COND])[0]["path"] == ""
        assert _errors({})[0]["path"] == ""

    def test_every_error_is_reported(self) -> None:
        tree = {"op": "and", "children": [{"field": "a"}, {"field": "b"}, {"op": "or", "children": []}]}
        assert [e["path"] for e in _errors(tree)] == ["children[0].field", "children[1].field", "children[2].children"]

    def test_node_limit(self) -> None:
        ok = {"op": "or", "children": [COND] * (MAX_NODES - 1)}
        parse(ok, make_resolver({}))
        errors = _errors({"op": "or", "children": [COND] * MAX_NODES})
        assert f"more than {MAX_NODES} nodes" in errors[0]["message"] and len(errors) == 1

    def test_nesting_limit(self) -> None:
        parse(_nested(MAX_DEPTH), make_resolver({}))
        errors = _errors(_nested(MAX_DEPTH + 1))
        assert f"more than {MAX_DEPTH} levels" in errors[0]["message"]
        assert errors[0]["path"].count("children[0]") == MAX_DEPTH

    def test_strings_are_lowercased_and_duplicates_dropped(self) -> None:
        node = parse({"field": "country", "operator": "in", "value": ["US", "us", "Gb"]}, make_resolver({}))
        assert node.value == ("us", "gb")  # type: ignore[union-attr]


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_cache")
def test_ten_levels_deep_through_the_api(acme: Any, acme_marketer: Any, login: Any) -> None:
    with schema_context("org_acme"):
        make_imported("Deep", [{"country": "US"}, {"country": "GB"}, {}])
    client = login(acme_marketer)
    response = client.post("/o/acme/api/v1/audiences/preview", {"tree": _nested(12)}, content_type="application/json")
    assert response.status_code == 200, response.content
    # 12 wrappers: 4 NOTs (levels 0, 3, 6, 9) -> back to the condition itself.
    assert response.json()["count"] == 1
    too_deep = client.post(
        "/o/acme/api/v1/audiences/preview", {"tree": _nested(MAX_DEPTH + 5)}, content_type="application/json"
    )
    assert too_deep.status_code == 400 and "levels" in too_deep.json()["error"]["message"]


KEYS = st.sampled_from(["op", "children", "field", "operator", "value", "placeholder", "x"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["and", "or", "not", "eq", "in", "between", "contains", "is_null", "country", "revenue",
                     "audience", "bombora:x", "custom.score", "gt", "US"]),
)  # fmt: skip
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=20,
)


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_cache")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(JUNK, st.fixed_dictionaries({"tree": JUNK}, optional={"sample": SCALARS})))
def test_junk_json_never_gives_a_server_error(acme: Any, acme_marketer: Any, login: Any, body: Any) -> None:
    client = login(acme_marketer)
    for url in ("/o/acme/api/v1/audiences/preview", "/o/acme/api/v1/audiences", "/o/acme/api/v1/audience-templates"):
        response = client.post(url, body, content_type="application/json")
        assert response.status_code in (200, 201, 400), (url, body, response.content)
        if response.status_code == 400:
            assert set(response.json()["error"]) == {"code", "message", "details"}
