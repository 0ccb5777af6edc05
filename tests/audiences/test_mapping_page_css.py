"""The column-mapping page's selects size to their longest option (session 12 UX review, "what remains").

The portal's stylesheet gives every select `width: 100%`; in the mapping table's narrow cell that cut the
options off ("Keep as a custom fiel…"). Read through the page: the stylesheets it links must leave the
mapping's selects their own width. (tests/browser/test_layout.py measures it in Chromium.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django_tenants.utils import schema_context

pytestmark = pytest.mark.django_db


def _widths_for(css: str, selector: str) -> list[str]:
    """The `width` declared by each rule whose selector list names `selector`, in cascade order."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    widths = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        if selector in [s.strip() for s in selectors.split(",")]:
            widths += re.findall(r"(?:^|;)\s*width\s*:\s*([^;]+)", body)
    return [w.strip() for w in widths]


def test_the_mapping_selects_are_not_stretched_to_the_cell(tmp_path: Path, login: Any, acme_marketer: Any) -> None:
    from audiences.services import import_create

    path = tmp_path / "map.csv"
    path.write_text("Work Email,Custom thing\na@x.com,1\n")
    with schema_context("org_acme"):
        imp = import_create(audience_name="Mapped", source_name="map.csv", actor=acme_marketer, path=path)
    page = login(acme_marketer).get(f"/o/acme/audiences/imports/{imp.pk}/map/").content.decode()
    assert 'class="mapping"' in page and "Keep as a custom field" in page
    sheets = [href for href in re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"', page)]
    prefix = static("")
    css = ""
    for href in sheets:
        if href.startswith(prefix):
            found = finders.find(href[len(prefix) :].split("?")[0])
            css += Path(found).read_text() if found else ""
    assert "select" in css, sheets
    widths = _widths_for(css, "select") + _widths_for(css, ".mapping select")
    assert widths and widths[-1] in ("auto", "max-content", "fit-content"), widths
