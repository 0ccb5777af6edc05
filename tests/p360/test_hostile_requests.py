"""Issue 15 item 4: hostile requests are a 400 (or 413) with the JSON error body on API paths, never a 500.

Each case is fixed at its root class (the JSON parser, the NUL-refusing middleware, the one pagination
class, the admin filters); the figure "hostile inputs / crashes" in the note counts these cases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from tenants.services import api_token_create

pytestmark = pytest.mark.django_db


def deep_tree(levels: int) -> str:
    """A logic tree `levels` groups deep, as text (json.dumps would itself recurse too deep)."""
    leaf = '{"field": "country", "op": "eq", "value": "US"}'
    return '{"op": "and", "children": [' * levels + leaf + "]}" * levels


@pytest.fixture
def api(acme_marketer: Any) -> Client:
    _, token = api_token_create(user=acme_marketer, name="hostile")
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def _error_body(response: Any, status: tuple[int, ...] = (400,)) -> dict[str, Any]:
    assert response.status_code in status, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "details"}, body
    return body


A = "/o/acme/api/v1"


@pytest.mark.parametrize(
    ("method", "path", "wrap"),
    [
        ("post", f"{A}/audiences/preview", lambda tree: '{"tree": ' + tree + "}"),
        ("post", f"{A}/audiences", lambda tree: '{"name": "deep", "tree": ' + tree + "}"),
        ("post", f"{A}/audience-templates", lambda tree: '{"name": "deep", "tree": ' + tree + "}"),
        ("patch", f"{A}/audiences/1", lambda tree: '{"tree": ' + tree + "}"),
    ],
)
def test_a_logic_tree_ten_thousand_levels_deep_is_a_400(api: Client, method: str, path: str, wrap: Any) -> None:
    response = getattr(api, method)(path, wrap(deep_tree(10_000)), content_type="application/json")
    body = _error_body(response)
    assert "deep" in body["error"]["message"]


def test_a_hundred_thousand_nested_lists_is_a_400(api: Client) -> None:
    body = "[" * 100_000 + "]" * 100_000
    _error_body(api.post(f"{A}/audiences/preview", body, content_type="application/json"))


def test_a_ten_megabyte_body_is_a_413(api: Client) -> None:
    body = json.dumps({"name": "big", "tree": {"op": "and", "children": []}, "pad": "x" * 10_000_000})
    _error_body(api.post(f"{A}/audiences", body, content_type="application/json"), (413,))


def test_a_nul_in_a_name_is_a_400(api: Client) -> None:
    tree = json.loads(deep_tree(1))
    response = api.post(
        f"{A}/audiences", json.dumps({"name": "a\u0000b", "tree": tree}), content_type="application/json"
    )
    _error_body(response)
    response = api.post(
        f"{A}/audience-templates", json.dumps({"name": "a\u0000b", "tree": tree}), content_type="application/json"
    )
    _error_body(response)


@pytest.mark.parametrize("path", ["/api/v1/orgs/", f"{A}/audiences"])
def test_a_limit_past_bigint_is_a_400(api: Client, path: str) -> None:
    _error_body(api.get(path, {"limit": "9223372036854775809"}))
    _error_body(api.get(path, {"offset": "9223372036854775809"}))
    _error_body(api.get(path, {"limit": "\u00b2"}))  # a Unicode digit int() refuses
    assert api.get(path, {"limit": "5"}).status_code == 200


def test_a_nul_in_a_page_query_is_a_400_not_a_500(acme_marketer: Any, super_admin: Any, login: Any) -> None:
    assert login(acme_marketer).get("/orgs/", {"q": "\x00"}).status_code == 400
    assert login(acme_marketer).get("/o/acme/audiences/", {"q": "a\x00"}).status_code == 400


def test_admin_filters_with_bad_values_are_not_500(super_admin: Any, login: Any) -> None:
    client = login(super_admin)
    for path, params in [
        ("/admin/tenants/membership/", {"org": "abc"}),
        ("/admin/ingestion/ingestionrun/", {"org": "'"}),
        ("/admin/ingestion/ingestionrun/", {"org": "99999999999999999999"}),
        ("/admin/ingestion/ingestionrun/", {"org": "\u00b2"}),
    ]:
        response = client.get(path, params)
        assert response.status_code in (200, 302, 400), (path, params, response.status_code)


# --- session 11: found by the junk sweep (tests/p360/test_junk_sweep.py) ---


@pytest.mark.parametrize("suffix", ["segments", "profile"])
@pytest.mark.parametrize("debug", [False, True])
def test_a_nul_in_a_path_parameter_is_a_400(api: Client, settings: Any, suffix: str, debug: bool) -> None:
    # `<str:user_id>` let "\x00" reach PostgreSQL: a DataError, a 500.
    settings.DEBUG = debug
    body = _error_body(api.get(f"{A}/users/a%00b/{suffix}"))
    assert "NUL" in body["error"]["message"]


def test_a_nul_in_a_page_path_is_a_400(acme_marketer: Any, login: Any) -> None:
    assert login(acme_marketer).get("/o/acme/segments/%00/").status_code == 400


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{A}/line-items", {"campaign": 1, "name": "\ud800", "budget": "1", "bid": "1"}),
        (f"{A}/imports", {"upload_id": "\ud800", "audience_name": "x"}),
        (f"{A}/audiences", {"name": "ok", "tree": {"field": "country", "operator": "eq", "value": "\udfff"}}),
        (f"{A}/programs", {"\ud83d": "key with a lone high surrogate"}),
    ],
)
def test_a_lone_surrogate_in_a_json_body_is_a_400(api: Client, path: str, body: dict[str, Any]) -> None:
    # JSON may spell "\ud800"; UTF-8 cannot encode it: saving or echoing it raised UnicodeEncodeError, a 500.
    response = api.post(path, json.dumps(body), content_type="application/json")
    assert "surrogate" in _error_body(response)["error"]["message"]


def test_a_valid_surrogate_pair_is_text(api: Client) -> None:
    # "\ud83d\ude00" is one character (an emoji): never refused.
    body = json.dumps({"name": "smile \U0001f600", "tree": json.loads(deep_tree(1))})
    assert "\\ud83d\\ude00" in body
    response = api.post(f"{A}/audiences/preview", body, content_type="application/json")
    assert "surrogate" not in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "created_at__year=99999999999999999999",  # OverflowError in Django's datetime()
        "created_at__year=9999",  # the year's end bound (10000) raised ValueError outside Django's try
        "created_at__year=9999&created_at__month=12&created_at__day=31",
        "created_at__year=2026&created_at__month=13",
    ],
)
@pytest.mark.parametrize("url", ["/admin/audit/auditevent/", "/o/acme/admin/uploads/upload/"])
def test_a_date_hierarchy_no_date_can_hold_is_an_incorrect_filter(
    super_admin: Any, login: Any, url: str, query: str
) -> None:
    client = login(super_admin)
    client.raise_request_exception = False
    response = client.get(f"{url}?{query}")
    assert response.status_code == 302 and response["Location"].endswith("?e=1"), response.status_code


def test_every_admin_with_a_date_hierarchy_bounds_it(rf: Any, super_admin: Any) -> None:
    from p360.core.admin_base import BoundedDateChangeList
    from p360.core.admin_sites import global_admin, org_admin

    request = rf.get("/")
    request.user = super_admin
    dated = [ma for site in (global_admin, org_admin) for ma in site._registry.values() if ma.date_hierarchy]
    assert len(dated) >= 8
    assert all(issubclass(ma.get_changelist(request), BoundedDateChangeList) for ma in dated), [
        type(ma).__name__ for ma in dated if not issubclass(ma.get_changelist(request), BoundedDateChangeList)
    ]


@pytest.mark.parametrize("debug", [False, True])
def test_too_many_query_fields_is_the_json_error_body_for_a_json_client(
    api: Client, settings: Any, debug: bool
) -> None:
    # Django raises TooManyFieldsSent (a SuspiciousOperation) past DATA_UPLOAD_MAX_NUMBER_FIELDS. With DEBUG on its
    # page is text/plain for a client that accepts JSON: it was passed through, not the error body.
    settings.DEBUG = debug
    api.raise_request_exception = False
    query = "&".join(f"f{index}=1" for index in range(1_100))
    response = api.get(f"{A}/audiences?{query}", HTTP_ACCEPT="application/json")
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    _error_body(response)


@pytest.mark.parametrize("debug", [False, True])
def test_too_many_query_fields_on_a_page_is_a_400(acme_marketer: Any, login: Any, settings: Any, debug: bool) -> None:
    settings.DEBUG = debug
    client = login(acme_marketer)
    client.raise_request_exception = False
    query = "&".join(f"f{index}=1" for index in range(1_100))
    assert client.get(f"/o/acme/audiences/?{query}").status_code == 400


@pytest.mark.parametrize("debug", [False, True])
def test_too_many_form_fields_in_an_api_body_is_a_400(api: Client, settings: Any, debug: bool) -> None:
    settings.DEBUG = debug
    api.raise_request_exception = False
    body = "&".join(f"f{index}=1" for index in range(1_100))
    response = api.post(f"{A}/programs", body, content_type="application/x-www-form-urlencoded")
    _error_body(response)


# --- session 12: NaN, Infinity and 1e309 are not JSON ---

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e309", "-1e400", "2.5e99999"]


@pytest.mark.parametrize(
    ("path", "template"),
    [
        (f"{A}/programs", '{"name": "P", "budget": <<x>>, "start": "2026-01-01", "end": "2026-12-31"}'),
        (f"{A}/line-items", '{"campaign": 1, "name": "L", "budget": "1", "bid": <<x>>}'),
        (f"{A}/audiences/preview", '{"tree": {"field": "revenue", "operator": "gt", "value": <<x>>}}'),
        (f"{A}/audiences", '{"name": "N", "tree": {"field": "revenue", "operator": "gt", "value": 1}, "x": [<<x>>]}'),
        (f"{A}/segments", '{"name": "S", "type": "independent", "rule": {"event_type": "orders", '
         '"attribute": "count", "operator": "gt", "value": <<x>>, "window_minutes": 5}}'),
        (f"{A}/events", '{"events": [{"event_id": "e", "user_id": "u", "event_type": "orders", '
         '"timestamp": "2026-01-01T00:00:00Z", "attributes": {"value": <<x>>}}]}'),
        (f"{A}/imports", '{"upload_id": <<x>>, "audience_name": "x"}'),
    ],
)  # fmt: skip
@pytest.mark.parametrize("debug", [False, True])
def test_a_non_finite_number_is_a_400_naming_it(api: Client, settings: Any, path: str, template: str, debug: bool):
    # Python's decoder reads NaN/Infinity as floats and 1e309 as inf; none of them is JSON (RFC 8259).
    settings.DEBUG = debug
    api.raise_request_exception = False
    for literal in NON_FINITE:
        body = _error_body(api.post(path, template.replace("<<x>>", literal), content_type="application/json"))
        message = body["error"]["message"]
        assert "not valid JSON" in message or "JSON parse error" in message, (path, literal, message)
        assert (literal.lstrip("-")[:6] in message) and "finite" in message, (path, literal, message)


def test_a_non_finite_number_beside_a_long_integer_is_still_refused(api: Client) -> None:
    # A 20-digit integer sends the body to the standard library's decoder (orjson reads it as a float): the
    # refusal must not depend on which decoder read the body.
    body = '{"name": "P", "budget": "1", "x": [12345678901234567890123, 1e309]}'
    assert "1e309" in _error_body(api.post(f"{A}/programs", body, content_type="application/json"))["error"]["message"]


def test_large_finite_numbers_and_long_integers_are_still_json(api: Client) -> None:
    body = '{"tree": {"field": "revenue", "operator": "gt", "value": 1e308}, "x": 12345678901234567890123}'
    assert api.post(f"{A}/audiences/preview", body, content_type="application/json").status_code == 200


def test_an_event_batch_with_one_nan_is_refused_whole(api: Client) -> None:
    # Not valid JSON: the whole request is a 400 (nothing stored), not one rejected event among accepted ones.
    events = [
        {"event_id": f"nan-{index}", "user_id": "u", "event_type": "orders", "timestamp": "2026-12-07T10:00:00Z"}
        for index in range(3)
    ]
    body = json.dumps({"events": [*events[:2], {**events[2], "attributes": {"value": float("nan")}}]})
    response = api.post(f"{A}/events", body, content_type="application/json")
    error = _error_body(response)["error"]
    assert error["code"] == "invalid_json" and "NaN" in error["message"] and error["trace_id"]
    response = api.post(f"{A}/events", json.dumps({"events": events}), content_type="application/json")
    assert response.status_code == 202 and response.json()["accepted"] == 3, response.content  # none was stored


def test_a_nul_query_on_another_orgs_prefix_confirms_nothing(api: Client) -> None:
    # Refused before routing (RefuseNulMiddleware): globex's prefix answers exactly as a prefix of no org does.
    theirs = api.get("/o/globex/api/v1/metrics", {"program": "\x00"})
    nobody = api.get("/o/no-such-org/api/v1/metrics", {"program": "\x00"})
    assert (theirs.status_code, theirs.json()) == (nobody.status_code, nobody.json())
    assert theirs.status_code == 400 and theirs.json()["error"]["code"] == "nul_character"
