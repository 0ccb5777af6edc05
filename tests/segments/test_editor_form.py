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
