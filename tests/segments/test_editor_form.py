"""The segment editor as a person uses it (session 12 UX review).

A derived segment opened for editing must save unchanged (its expression box used to hold the whole
definition, name and type included, so "Save" failed with "expression.op must be ..."); a rejected form
comes back with everything that was typed, the error in an alert and the faulty control marked.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from tests.segments.helpers import create_segment, independent

pytestmark = pytest.mark.django_db
BASE = "/o/acme/segments/"


@pytest.fixture
def client(acme, acme_marketer, login):
    return login(acme_marketer)


def _textarea(body: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', body, re.S)
    assert match, f"no textarea {name}"
    return html.unescape(match.group(1))


def _control(body: str, control_id: str) -> str:
    match = re.search(rf'<(?:input|select|textarea)[^>]*id="{control_id}"[^>]*>', body)
    assert match, f"no control {control_id}"
    return match.group(0)


def _derived(client) -> int:
    first = create_segment(client, independent("one")).json()["id"]
    second = create_segment(client, independent("two", value=5)).json()["id"]
    body = {
        "name": "both",
        "type": "derived",
        "expression": {"op": "and", "children": [{"segment": first}, {"segment": second}]},
    }
    response = create_segment(client, body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_a_derived_segment_opens_with_its_expression_only_and_saves_unchanged(client):
    pk = _derived(client)
    page = client.get(f"{BASE}{pk}/edit/")
    body = page.content.decode()
    expression = json.loads(_textarea(body, "expression"))
    assert set(expression) == {"op", "children"}, expression  # not the whole definition
    assert 'value="derived" checked' in body
    saved = client.post(
        f"{BASE}{pk}/edit/",
        {"name": "both", "description": "", "type": "derived", "expression": _textarea(body, "expression")},
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]


def test_bad_json_keeps_what_was_typed_and_marks_the_expression(client):
    typed = '{"op": "and", "children": [{"segment": 1},'
    response = client.post(
        f"{BASE}new/", {"name": "My derived", "description": "keep me", "type": "derived", "expression": typed}
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert 'class="alert alert-error" role="alert" id="segment-error"' in body and "not valid JSON" in body
    assert 'value="My derived"' in body and 'value="keep me"' in body
    assert 'value="derived" checked' in body and 'value="independent" checked' not in body
    assert _textarea(body, "expression") == typed
    assert 'aria-invalid="true"' in _control(body, "expression")


def test_a_bad_threshold_keeps_the_rule_and_marks_the_threshold(client):
    form = {
        "name": "Busy",
        "type": "independent",
        "event_type": "orders",
        "attribute": "sum",
        "property": "amount",
        "operator": "gte",
        "value": "lots",
        "window_minutes": "90",
    }
    response = client.post(f"{BASE}new/", form)
    body = response.content.decode()
    assert response.status_code == 400 and "must be a number" in body
    value = _control(body, "value")
    assert 'value="lots"' in value and 'aria-invalid="true"' in value
    assert 'value="90"' in _control(body, "window_minutes") and 'value="amount"' in _control(body, "property")
    assert re.search(r'<option value="sum"\s+selected>', body) and re.search(r'<option value="gte"\s+selected>', body)
    assert 'aria-invalid="true"' not in _control(body, "name")


def test_a_taken_name_marks_the_name(client):
    create_segment(client, independent("Taken"))
    form = {"name": "Taken", "type": "independent", "event_type": "orders", "attribute": "count"}
    response = client.post(f"{BASE}new/", {**form, "operator": "gt", "value": "1", "window_minutes": "60"})
    assert response.status_code == 400
    assert 'aria-invalid="true"' in _control(response.content.decode(), "name")


def _alert(body: str) -> str:
    match = re.search(r'id="segment-error">(.*?)</div>', body, re.S)
    assert match, "no error alert"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


_RULE = {
    "name": "Busy",
    "type": "independent",
    "event_type": "orders",
    "attribute": "sum",
    "property": "amount",
    "operator": "gte",
    "value": "5",
    "window_minutes": "60",
}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"value": "lots"}, "The value must be a number."),
        ({"value": "1e16"}, "The value must be a number below 1,000,000,000,000,000."),
        ({"window_minutes": "0"}, "The time window must be a whole number of minutes from 1 to 1,440."),
        ({"event_type": "nope"}, "Choose an event type from the list."),
        ({"attribute": "median"}, "Choose what to measure from the list."),
        ({"operator": "about"}, "Choose a comparison from the list."),
        ({"property": "p" * 101}, "The property must be a name of at most 100 characters."),
        ({"type": "other"}, "Choose independent or derived."),
        (
            {"type": "derived", "expression": "[1]"},
            'The expression must be a group, e.g. {"op": "and", "children": [...]}.',
        ),
        (
            {"type": "derived", "expression": '{"op": "xor", "children": [{"segment": 1}]}'},
            'Each group\'s "op" must be "and", "or" or "not".',
        ),
        (
            {"type": "derived", "expression": '{"op": "and", "children": []}'},
            "Each group needs at least one segment: add one or remove the group.",
        ),
        (
            {"type": "derived", "expression": '{"op": "not", "children": [{"segment": 1}, {"segment": 2}]}'},
            "A NOT group takes exactly one segment or group.",
        ),
        (
            {"type": "derived", "expression": '{"op": "and", "children": [{"segment": "x"}]}'},
            "Each item must be one of the org's segments: choose it from the list.",
        ),
        (
            {"type": "derived", "expression": '{"op": "and", "children": [{"segment": 987654}]}'},
            "There is no segment with id 987654: choose another segment or remove it.",
        ),
    ],
)
def test_errors_speak_the_marketers_words_not_the_apis_field_paths(client, change, words):
    response = client.post(f"{BASE}new/", {**_RULE, **change})
    assert response.status_code == 400
    alert = _alert(response.content.decode())
    assert alert == f"Not saved. {words}"
    assert not re.search(r"\b(rule|expression)\.\w", alert), alert


def test_a_taken_name_is_worded_for_the_page(client):
    create_segment(client, independent("Taken"))
    response = client.post(f"{BASE}new/", {**_RULE, "name": "Taken"})
    assert (
        _alert(response.content.decode()) == "Not saved. A segment named “Taken” already exists: choose another name."
    )


def test_the_api_keeps_its_field_path_messages(client):
    """The CONTRACT's wording: the page's words must not leak into the API's error body."""
    body = independent("Api busy")
    body["rule"]["value"] = "lots"
    error = create_segment(client, body).json()["error"]
    assert error["message"] == "rule.value must be a number", error


def test_a_cycle_is_worded_for_the_page_and_the_api_keeps_its_message(client):
    first = create_segment(client, independent("Loop base")).json()["id"]
    outer = {"name": "Loop outer", "type": "derived", "expression": {"op": "and", "children": [{"segment": first}]}}
    outer_id = create_segment(client, outer).json()["id"]
    inner = {"name": "Loop inner", "type": "derived", "expression": {"op": "not", "children": [{"segment": outer_id}]}}
    inner_id = create_segment(client, inner).json()["id"]
    expression = json.dumps({"op": "and", "children": [{"segment": inner_id}]})
    response = client.post(
        f"{BASE}{outer_id}/edit/", {"name": "Loop outer", "type": "derived", "expression": expression}
    )
    assert response.status_code == 400
    assert _alert(response.content.decode()) == (
        "Not saved. A segment cannot be built from itself: a chosen segment already includes this one."
    )
    api = client.patch(
        f"/o/acme/api/v1/segments/{outer_id}", {"expression": json.loads(expression)}, content_type="application/json"
    )
    error = api.json()["error"]
    assert (api.status_code, error["code"], error["message"]) == (
        400,
        "cycle",
        "the expression refers back to this segment (a cycle)",
    )


# Each check of a segment's definition (segments.services) and the reason it raises: the page words every one.
_DEFINITION_CHECKS = ("_clean_rule", "_clean_expression", "_check_references", "_apply_definition", "_clean_name")


def _definition_raises() -> list[tuple[str, str]]:
    """(function, reason) of every `raise SegmentError(...)` in the definition checks, read from the source."""
    import ast
    import inspect

    from segments import services

    tree = ast.parse(inspect.getsource(services))
    found = []
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.name in (*_DEFINITION_CHECKS, "segment_create"):
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "SegmentError":
                    keywords = {k.arg: k.value for k in node.keywords}
                    reason = keywords.get("reason") or keywords.get("code")
                    assert isinstance(reason, ast.Constant), f"{function.name}: a SegmentError without a reason"
                    found.append((function.name, reason.value))
    return found


def test_every_definition_error_has_a_reason_the_page_words():
    from segments.views import _PAGE_WORDS

    raises = _definition_raises()
    assert len(raises) >= 17, raises
    assert not [r for _, r in raises if r not in _PAGE_WORDS], [r for _, r in raises if r not in _PAGE_WORDS]


def test_the_reason_stays_out_of_the_apis_error_body(client):
    body = independent("Api window")
    body["rule"]["window_minutes"] = 0
    error = create_segment(client, body).json()["error"]
    assert error["code"] == "invalid" and error["details"] == {"field": "rule.window_minutes"}
    assert error["message"] == "rule.window_minutes must be a whole number from 1 to 1440"
