"""The audience builder in Chromium, against the real API and engine.

Records come from a small CSV loaded through the real import (`import_audience`), inside the browser module's
rolled-back transaction. A three-level tree with a NOT group is built by real SortableJS drag and drop
(mouse down / move in steps / up); the live count must equal the preview API's count for the same tree, asked
with the same session. A second test builds a tree with the keyboard only. Screenshots: var/screenshots/builder-*.png.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from audiences import cache
from tests.uploads.test_browser_upload import _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

INDUSTRIES = ["Technology", "Finance", "Retail", "Health"]
COUNTRIES = ["US", "GB", "US", "CA", "DE"]


def _people() -> list[dict[str, Any]]:
    people = []
    for i in range(60):
        revenue = None if i % 7 == 0 else (i % 10) * 3_000_000
        people.append({
            "email": f"person{i}@company{i}.com" if i % 5 else "",
            "company": f"Company {i}",
            "website": f"company{i}.com",
            "industry": INDUSTRIES[i % 4],
            "revenue": revenue,
            "country": COUNTRIES[i % 5],
        })  # fmt: skip
    return people


def _expected_count(people: list[dict[str, Any]]) -> int:
    """country in [US] and (industry in [Technology] or not (revenue >= 10M)): NOT includes unknown revenue."""

    def matches(p: dict[str, Any]) -> bool:
        rich = p["revenue"] is not None and p["revenue"] >= 10_000_000
        return p["country"] == "US" and (p["industry"] == "Technology" or not rich)

    return sum(1 for p in people if matches(p))


@pytest.fixture
def acme_records(tmp_path: Path, settings: Any) -> list[dict[str, Any]]:
    settings.DATA_DIR = tmp_path
    people = _people()
    lines = ["Email,Company,Website,Industry,Revenue,Country"]
    lines += [
        f"{p['email']},{p['company']},{p['website']},{p['industry']},{'' if p['revenue'] is None else p['revenue']},{p['country']}"
        for p in people
    ]
    path = tmp_path / "crm.csv"
    path.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    call_command("import_audience", "--org", "acme", str(path), "--name", "Browser CRM", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["rows_loaded"] == 60, result
    cache.invalidate()
    return people


def _shoot(page: Any, directory: Path, name: str) -> None:
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(directory / name), full_page=True, animations="disabled")


def _drag(page: Any, handle: Any, target: Any, at: float = 0.5) -> None:
    """A real pointer drag: press on the handle, move in steps, re-aim as the layout shifts, release."""
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 4, y + 6, steps=4)
    for _ in range(4):
        goal = target.bounding_box()
        page.mouse.move(goal["x"] + goal["width"] / 2, goal["y"] + goal["height"] * at, steps=10)
        page.wait_for_timeout(100)
    page.mouse.up()
    page.wait_for_timeout(150)


def _condition(page: Any, label: str) -> Any:
    return page.locator(".bcond", has=page.locator(".field-btn", has_text=label))


def _tree(page: Any) -> Any:
    return page.evaluate("() => p360Builder.tree()")


def _api_preview(page: Any, tree: Any) -> dict[str, Any]:
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    response = page.request.post(
        "/o/acme/api/v1/audiences/preview",
        data=json.dumps({"tree": tree, "sample": 10}),
        headers={"Content-Type": "application/json", "X-CSRFToken": token},
    )
    assert response.status == 200, response.text()
    return response.json()


def _wait_count(page: Any, tree: Any) -> None:
    """Wait until the page shows the count of exactly this tree (the debounced preview has answered)."""
    page.wait_for_function(
        "(t) => JSON.stringify(p360Builder.tree()) === JSON.stringify(t) && !Alpine.store('builder').loading"
        " && Alpine.store('builder').count !== null",
        arg=tree,
    )


EXPECTED_TREE = {
    "op": "and",
    "children": [
        {"field": "country", "operator": "in", "value": ["US"]},
        {
            "op": "or",
            "children": [
                {"field": "industry", "operator": "in", "value": ["Technology"]},
                {"op": "not", "children": [{"field": "revenue", "operator": "gte", "value": 10_000_000}]},
            ],
        },
    ],
}


def test_drag_and_drop_a_three_level_tree_with_not_and_see_the_apis_count(
    browser_page: Any, live_url: str, acme_marketer: Any, acme_records: Any, screenshot_dir: Path
) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, live_url, acme_marketer)
    page.goto("/o/acme/audiences/build/")
    expect(page.get_by_text("Start by adding a condition or pick a template.")).to_be_visible()
    _shoot(page, screenshot_dir, "builder-empty.png")

    # Three conditions at the top level, chosen with the field picker.
    page.click("[data-action=first-condition]")
    page.keyboard.type("country")
    page.keyboard.press("Enter")
    _condition(page, "Country").locator(".chip[data-value=US]").click()
    for name in ("industry", "revenue"):
        page.click("[aria-label='Add a condition to the audience']")
        page.keyboard.type(name)
        page.keyboard.press("Enter")
    _condition(page, "Industry").locator(".chip[data-value=Technology]").click()
    _condition(page, "Revenue").locator("[data-focus=value]").fill("10000000")
    # An OR group holding a NOT group (both start with one empty condition: remove them).
    page.click("[aria-label='Add a group to the audience']")
    page.keyboard.press("Escape")
    outer = page.locator(".is-root > .bnode-children > .bgroup")
    outer.locator("[data-focus=add-group]").last.click()
    page.keyboard.press("Escape")
    inner = outer.locator(".bgroup")
    inner.locator("[data-focus=op-not]").click()
    outer.locator("[data-focus=op-or]").first.click()
    for _ in range(2):
        page.locator(".bcond", has=page.locator(".field-btn.is-empty")).first.locator("[data-focus=remove]").click()
    expect(inner.locator(":scope > .bnode-children")).to_be_empty()

    # Drag: revenue into the (empty) NOT group, industry into the OR group above the NOT group.
    _drag(page, _condition(page, "Revenue").locator(".drag-handle"), inner.locator(":scope > .bnode-children"))
    _drag(page, _condition(page, "Industry").locator(".drag-handle"), inner.locator(":scope > .bnode-head"), at=0.2)
    assert _tree(page) == EXPECTED_TREE

    # The live count equals the API's count for the same tree (and the independent expectation).
    _wait_count(page, EXPECTED_TREE)
    api = _api_preview(page, EXPECTED_TREE)
    expected = _expected_count(acme_records)
    assert api["count"] == expected and 0 < expected < 60
    expect(page.get_by_test_id("live-count")).to_have_text(f"{expected:,}")
    expect(page.get_by_test_id("universe")).to_have_text("60")
    # Per-node counts on the nodes: the NOT group's own count is what the API says for its path.
    not_count = api["nodes"]["children[1].children[1]"]["count"]
    expect(inner.locator("[data-role=own]").first).to_have_text(f"{not_count:,}")
    expect(page.locator("#builder-announcer")).to_contain_text(f"{expected:,} records match")
    expect(page.get_by_test_id("sample-table").locator("tbody tr")).to_have_count(min(10, expected))
    _shoot(page, screenshot_dir, "builder-tree.png")

    # Undo (button and Ctrl+Z) and redo bring the tree back exactly.
    page.click("[data-action=undo]")
    assert _tree(page) != EXPECTED_TREE
    page.keyboard.press("Control+Shift+Z")
    assert _tree(page) == EXPECTED_TREE

    # Save it: the detail page shows the materialised members, the definition and its first version.
    page.fill("#save-name", "US tech, or not big")
    page.fill("#save-description", "Built by dragging")
    with page.expect_navigation(url=re.compile(r"/o/acme/audiences/\d+/$")):
        page.click("#save-audience")
    expect(page.locator("h1")).to_have_text("US tech, or not big")
    expect(page.get_by_test_id("member-count")).to_have_text(f"{expected:,}")
    expect(page.get_by_test_id("tree-summary")).to_contain_text("NOT")
    expect(page.get_by_test_id("tree-summary")).to_contain_text("Annual revenue is at least 10,000,000")
    expect(page.get_by_test_id("definition-versions").locator("tr")).to_have_count(1)
    expect(page.locator("canvas[data-role=chart]")).to_be_visible()
    _shoot(page, screenshot_dir, "builder-saved-detail.png")
    assert not errors, errors


def _tab_to(page: Any, selector: str, *, back: bool = False, limit: int = 90) -> None:
    """Press Tab (or Shift+Tab) until the focused element matches `selector`: keyboard-only navigation."""
    for _ in range(limit):
        if page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Shift+Tab" if back else "Tab")
    raise AssertionError(f"Tab never reached {selector}")


ROOT_ITEMS = ".is-root > .bnode-children > .bnode"


def test_keyboard_only_build_move_undo_and_redo(
    browser_page: Any, live_url: str, acme_marketer: Any, acme_records: Any, screenshot_dir: Path
) -> None:
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    page.goto("/o/acme/audiences/build/")
    page.wait_for_function("() => Alpine.store('builder').ready")

    _tab_to(page, "[data-action=first-condition]")
    page.keyboard.press("Enter")  # a condition, with its field picker open and focused
    expect(page.locator("#field-search")).to_be_focused()
    page.keyboard.type("indus")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    expect(page.locator(f"{ROOT_ITEMS} .op-select")).to_be_focused()
    _tab_to(page, ".chip[data-value=Technology]")
    page.keyboard.press("Enter")
    expect(page.locator(".chip[data-value=Technology]")).to_have_attribute("aria-pressed", "true")

    _tab_to(page, "[aria-label='Add a group to the audience']")
    page.keyboard.press("Enter")  # a group with one condition, whose picker opens
    page.keyboard.type("country")
    page.keyboard.press("Enter")
    _tab_to(page, ".chip[data-value=US]")
    page.keyboard.press("Space")
    _tab_to(page, f"{ROOT_ITEMS}.bgroup > .bnode-head [data-focus=op-not]", back=True)
    page.keyboard.press("Enter")
    # Move the industry condition below the NOT group with its keyboard button.
    _tab_to(page, f"{ROOT_ITEMS}:first-child > .bnode-head [data-focus=down]", back=True)
    page.keyboard.press("Enter")
    expected = {
        "op": "and",
        "children": [
            {"op": "not", "children": [{"field": "country", "operator": "in", "value": ["US"]}]},
            {"field": "industry", "operator": "in", "value": ["Technology"]},
        ],
    }
    assert _tree(page) == expected
    page.keyboard.press("Control+z")
    assert _tree(page)["children"][0]["field"] == "industry"
    page.keyboard.press("Control+Shift+Z")
    assert _tree(page) == expected

    _wait_count(page, expected)
    count = _api_preview(page, expected)["count"]
    people = acme_records
    assert count == sum(1 for p in people if p["industry"] == "Technology" and p["country"] != "US")
    expect(page.get_by_test_id("live-count")).to_have_text(f"{count:,}")
    _shoot(page, screenshot_dir, "builder-keyboard.png")

    # Save as a template with the keyboard, clear the tree, and start again from that template (in-page picker).
    _tab_to(page, ".template-save summary")
    page.keyboard.press("Enter")
    _tab_to(page, "#template-name")
    page.keyboard.type("Non-US tech")
    _tab_to(page, "#save-template")
    page.keyboard.press("Enter")
    expect(page.locator(".save-card .form-ok")).to_contain_text("Template “Non-US tech” saved")
    page.evaluate("() => p360Builder.clear()")
    expect(page.get_by_text("Start by adding a condition or pick a template.")).to_be_visible()
    _tab_to(page, "[data-action=templates]", back=True)
    page.keyboard.press("Enter")
    _tab_to(page, "[aria-label='Use template Non-US tech']")
    page.keyboard.press("Enter")
    assert _tree(page) == expected


def test_template_save_edit_overlap_and_an_error_on_its_node(
    browser_page: Any, live_url: str, acme_marketer: Any, acme_records: Any, screenshot_dir: Path
) -> None:
    from django_tenants.utils import schema_context

    from audiences.models import Audience
    from audiences.saved import built_audience_create
    from tests.audiences.builder_helpers import load_bombora

    people = acme_records
    load_bombora([(p["website"], "Cloud Computing", 40 + (i % 5) * 10) for i, p in enumerate(people)])
    cache.invalidate()
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, live_url, acme_marketer)

    # Start from the built-in ICP template: its topic is left to choose; the other rules are kept.
    page.goto("/o/acme/audiences/build/templates/")
    icp = page.get_by_role("link", name=re.compile(r"Use template ICP"))
    expect(icp).to_be_visible()
    _shoot(page, screenshot_dir, "builder-templates.png")
    icp.click()
    topic = page.get_by_role("button", name=re.compile("Choose an intent topic|Field of condition 3"))
    expect(topic).to_have_text("Choose an intent topic…")
    expect(page.get_by_text("Choose a Bombora intent topic.")).to_be_visible()
    expect(_condition(page, "Industry").locator("[data-focus=value]")).to_have_value("tech")  # text box for contains
    topic.click()
    page.keyboard.type("cloud")
    expect(page.locator("[role=option][data-field='bombora:Cloud Computing']")).to_be_visible()
    page.keyboard.press("Enter")
    tree = {
        "op": "and",
        "children": [
            {"field": "industry", "operator": "contains", "value": "tech"},
            {"field": "revenue", "operator": "gt", "value": 10_000_000},
            {"field": "bombora:Cloud Computing", "operator": "gte", "value": 60},
        ],
    }
    assert _tree(page) == tree
    _wait_count(page, tree)
    count = _api_preview(page, tree)["count"]
    surging = {p["website"] for i, p in enumerate(people) if 40 + (i % 5) * 10 >= 60}
    rich_tech = [p for p in people if p["industry"] == "Technology" and (p["revenue"] or 0) > 10_000_000]
    assert count == sum(1 for p in rich_tech if p["website"] in surging) > 0
    expect(page.get_by_test_id("live-count")).to_have_text(f"{count:,}")
    # The topic's own count and the Surging shortcut next to its slider.
    expect(page.get_by_role("button", name=re.compile(r"surging \(score at least 60\)"))).to_be_visible()
    _shoot(page, screenshot_dir, "builder-template.png")
    page.fill("#save-name", "ICP cloud")
    with page.expect_navigation(url=re.compile(r"/o/acme/audiences/\d+/$")):
        page.click("#save-audience")
    expect(page.get_by_test_id("member-count")).to_have_text(f"{count:,}")
    expect(page.get_by_test_id("tree-summary")).to_contain_text("Intent: Cloud Computing is at least 60")

    # Edit: widen the revenue rule, save a new version with a note; the detail lists both versions.
    page.get_by_role("link", name="Edit in the builder").click()
    revenue = _condition(page, "Annual revenue").locator("[data-focus=value]")
    expect(revenue).to_have_value("10000000")
    revenue.fill("1000000")
    expect(page.locator("#save-name")).to_have_value("ICP cloud")
    page.fill("#save-note", "widened revenue to $1M")
    with page.expect_navigation(url=re.compile(r"/o/acme/audiences/\d+/$")):
        page.click("#save-audience")
    versions = page.get_by_test_id("definition-versions").locator("tr")
    expect(versions).to_have_count(2)
    expect(versions.first).to_contain_text("widened revenue to $1M")
    wider = sum(
        1
        for p in people
        if p["industry"] == "Technology" and (p["revenue"] or 0) > 1_000_000 and p["website"] in surging
    )
    expect(page.get_by_test_id("member-count")).to_have_text(f"{wider:,}")
    _shoot(page, screenshot_dir, "builder-detail.png")

    # Overlap of the imported CRM and the built audience: the built one lies inside the CRM.
    with schema_context("org_acme"):
        crm = Audience.objects.get(name="Browser CRM")
        built = Audience.objects.get(name="ICP cloud")
    page.goto(f"/o/acme/audiences/overlap/?ids={crm.pk},{built.pk}")
    expect(page.get_by_test_id("intersection")).to_contain_text(f"In all 2: {wider:,}")
    expect(page.locator(f"svg.venn text[data-region='{min(crm.pk, built.pk)},{max(crm.pk, built.pk)}']")).to_have_text(
        f"{wider:,}"
    )
    expect(page.locator(f"svg.venn text[data-region='{crm.pk}']")).to_have_text(f"{60 - wider:,}")
    _shoot(page, screenshot_dir, "builder-overlap.png")

    # A saved definition that no longer fits (its referenced audience was deleted): the error sits on that node.
    with schema_context("org_acme"):
        other = Audience.objects.create(name="Short-lived", kind="built", tree=None)
        other_id = other.pk
        stale = built_audience_create(
            name="Not in short-lived",
            tree={"op": "not", "children": [{"field": "audience", "operator": "in", "value": [other_id]}]},
            actor=None,
        )
        other.delete()
    page.goto(f"/o/acme/audiences/{stale.pk}/edit/")
    node_error = page.locator(".bcond.has-error [data-role=api-error]")
    expect(node_error).to_contain_text(f"no audience with id {other_id}")
    expect(page.locator(".count-card .form-error")).to_contain_text("need attention")
    _shoot(page, screenshot_dir, "builder-error.png")
    # The missing audience is shown as a chip so it can be removed; choosing a real one clears the error.
    page.get_by_role("button", name=re.compile(rf"#{other_id} \(not found\)")).click()
    page.get_by_role("button", name=re.compile(r"Browser CRM \(60\)")).click()
    expect(node_error).to_be_hidden()
    expect(page.get_by_test_id("live-count")).to_have_text("0")  # everyone is in the CRM
    assert not errors, errors
