"""The segment editor's derived-segment picker in Chromium (session 13).

A derived segment is built with the picker (AND of two segments and a NOT group, partly with the keyboard),
saved through the page's form, reloaded, edited (OR, an item removed) and saved again: the stored expression
is exactly the API's shape each time. A cycle and a missing segment keep their clear errors; a box left
without a segment is caught before the form is sent. Screenshots: var/screenshots/segment-picker-*.png.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from tests.segments.helpers import independent
from tests.uploads.test_browser_upload import _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db]
BASE = "/o/acme/segments/"


def _create(body: dict[str, Any]) -> int:
    """Through the service the API calls (a test Client request here would re-connect Django's
    close_old_connections signal and close the live server's shared connection)."""
    from segments.services import segment_create

    with schema_context("org_acme"):
        return int(segment_create(data=body, actor=None).pk)


def _stored(pk: int) -> tuple[dict[str, Any], int, set[int]]:
    from segments.models import Segment, SegmentDependency

    with schema_context("org_acme"):
        segment = Segment.objects.get(pk=pk)
        children = set(SegmentDependency.objects.filter(derived=segment).values_list("child_id", flat=True))
        return segment.expression, segment.version, children


def _expression(page: Any) -> Any:
    return json.loads(page.locator("#expression").input_value())


def _root(page: Any) -> Any:
    return page.locator("#expression-picker .bgroup.is-root")


def _slots(page: Any) -> Any:
    return page.locator("#expression-picker select[data-focus=segment]")


def _save(page: Any) -> int:
    with page.expect_navigation(url=re.compile(r"/o/acme/segments/\d+/$")):
        page.get_by_role("button", name="Save", exact=True).click()
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def _no_live_counts(page: Any) -> None:
    """The segment pages' live counts are a 30 s SSE stream; the test server answers one request at a time."""
    page.route("**/segments/live/", lambda route: route.abort())


def _shoot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / name), full_page=True, animations="disabled")


def test_build_save_reload_and_edit_a_derived_segment(
    browser_page: Any, live_url: str, acme_marketer: Any, screenshot_dir: Path
) -> None:
    buyers, carts, churners = (
        _create(independent(name, value=value))
        for name, value in (("Picker buyers", 2), ("Picker carts", 5), ("Picker churners", 9))
    )
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _no_live_counts(page)
    _sign_in(page, live_url, acme_marketer)
    page.goto(f"{BASE}new/")
    page.fill("#name", "Picker keepers")
    page.get_by_label("Derived (AND / OR / NOT of segments)").check()
    expect(page.locator("#expression-picker")).to_be_visible()
    expect(page.locator("#rule-fields")).to_be_hidden()
    expect(page.get_by_text("Advanced: the expression as JSON")).to_be_visible()
    expect(page.locator("#expression")).to_be_hidden()  # the JSON is the fallback, folded away

    # The first box is there to fill; a second segment and a group are added from the keyboard.
    _slots(page).first.select_option(label="Picker buyers")
    page.get_by_role("button", name="Add a segment to the expression").focus()
    page.keyboard.press("Enter")
    expect(_slots(page).nth(1)).to_be_focused()  # focus lands on the new box
    _slots(page).nth(1).select_option(label="Picker carts")
    page.get_by_role("button", name="Add a group to the expression").focus()
    page.keyboard.press("Enter")
    expect(_slots(page).nth(2)).to_be_focused()
    _slots(page).nth(2).select_option(label="Picker churners")
    inner = _root(page).locator(".bgroup")
    inner.locator("[data-focus=op-not]").focus()
    page.keyboard.press("Space")
    expect(inner.locator("[data-focus=op-not]")).to_have_attribute("aria-pressed", "true")
    expect(inner.get_by_role("button", name="Add a segment to this group")).to_be_disabled()  # NOT holds one item
    built = {
        "op": "and",
        "children": [{"segment": buyers}, {"segment": carts}, {"op": "not", "children": [{"segment": churners}]}],
    }
    assert _expression(page) == built
    _shoot(page, screenshot_dir, "segment-picker-built.png")
    pk = _save(page)
    expect(page.locator("h1")).to_contain_text("Picker keepers")
    assert _stored(pk) == (built, 1, {buyers, carts, churners})

    # Reload the editor: the picker shows the saved tree, the JSON box holds exactly it.
    page.goto(f"{BASE}{pk}/edit/")
    expect(page.get_by_label("Derived (AND / OR / NOT of segments)")).to_be_checked()
    expect(_slots(page)).to_have_count(3)
    for index, pk_child in enumerate((buyers, carts, churners)):
        expect(_slots(page).nth(index)).to_have_value(str(pk_child))
    expect(_root(page).locator(":scope > .bnode-head [data-focus=op-and]")).to_have_attribute("aria-pressed", "true")
    expect(_root(page).locator(".bgroup [data-focus=op-not]")).to_have_attribute("aria-pressed", "true")
    assert _expression(page) == built

    # Edit: ANY (OR) at the top, "Picker carts" removed with the keyboard; version 2 is saved.
    _root(page).locator(":scope > .bnode-head [data-focus=op-or]").click()
    page.get_by_role("button", name="Remove Picker carts").focus()
    page.keyboard.press("Enter")
    expect(_slots(page)).to_have_count(2)
    edited = {"op": "or", "children": [{"segment": buyers}, {"op": "not", "children": [{"segment": churners}]}]}
    assert _expression(page) == edited
    _save(page)
    assert _stored(pk) == (edited, 2, {buyers, churners})
    page.goto(f"{BASE}{pk}/edit/")
    expect(_slots(page)).to_have_count(2)
    expect(_root(page).locator(":scope > .bnode-head [data-focus=op-or]")).to_have_attribute("aria-pressed", "true")
    _shoot(page, screenshot_dir, "segment-picker-reloaded.png")
    assert not errors, errors


def test_cycles_missing_segments_and_empty_boxes_keep_clear_errors(
    browser_page: Any, live_url: str, acme_marketer: Any, screenshot_dir: Path
) -> None:
    base = _create(independent("Cycle base"))
    first = _create(
        {"name": "Cycle first", "type": "derived", "expression": {"op": "and", "children": [{"segment": base}]}}
    )
    second = _create(
        {"name": "Cycle second", "type": "derived", "expression": {"op": "not", "children": [{"segment": first}]}}
    )
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _no_live_counts(page)
    _sign_in(page, live_url, acme_marketer)

    # A cycle: "Cycle first" made of "Cycle second", which is NOT "Cycle first".
    page.goto(f"{BASE}{first}/edit/")
    expect(_slots(page).first.locator("option", has_text="Cycle second (derived)")).to_have_count(1)
    _slots(page).first.select_option(label="Cycle second (derived)")
    page.get_by_role("button", name="Save", exact=True).click()
    alert = page.locator("#segment-error")
    expect(alert).to_have_text(
        "Not saved. A segment cannot be built from itself: a chosen segment already includes this one."
    )
    expect(_slots(page).first).to_have_value(str(second))  # the picker shows what was tried, nothing lost
    assert _stored(first)[0] == {"op": "and", "children": [{"segment": base}]}

    # A box left empty is caught in the page, focused and marked; nothing is sent.
    page.goto(f"{BASE}{first}/edit/")
    page.get_by_role("button", name="Add a segment to the expression").click()
    page.get_by_role("button", name="Save", exact=True).click()
    picker_error = page.locator("#picker-error")
    expect(picker_error).to_have_text("Not saved: choose a segment in the marked box, or remove it.")
    expect(_slots(page).nth(1)).to_be_focused()
    expect(_slots(page).nth(1)).to_have_attribute("aria-invalid", "true")
    assert page.url.endswith(f"{BASE}{first}/edit/")

    # A missing segment typed in the advanced JSON: the picker shows it as not found; the server says so too.
    page.get_by_text("Advanced: the expression as JSON").click()
    page.fill("#expression", '{"op": "and", "children": [{"segment": 987654}]}')
    expect(_slots(page)).to_have_count(1)
    expect(page.locator("#expression-picker .node-error")).to_contain_text("no segment with id 987654")
    _shoot(page, screenshot_dir, "segment-picker-missing.png")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(alert).to_have_text("Not saved. There is no segment with id 987654: choose another segment or remove it.")
    expect(_slots(page).first.locator("option:checked")).to_have_text("#987654 (not found)")

    # JSON the picker cannot show: the note says so and the JSON box stays open after the error.
    page.fill("#expression", '{"op": "and", "children": [')
    expect(page.locator("#expression-picker [data-role=note]")).to_be_visible()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(alert).to_contain_text("not valid JSON")
    expect(page.locator("#expression")).to_be_visible()
    expect(page.locator("#expression")).to_have_value('{"op": "and", "children": [')
    assert not errors, errors
