"""The import report as a marketer reads it (session 12 UX review)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.audiences.test_import import HEADER, run, write

pytestmark = pytest.mark.django_db


def test_the_report_names_mapped_fields_as_the_mapping_step_does(
    tmp_path: Path, login: Any, acme_marketer: Any
) -> None:
    """It listed stored names (`company_name`, `domain`); the mapping step and the quality table say
    "Company" and "Company domain"."""
    result = run(write(tmp_path, "words.csv", [HEADER, "ann@example.com,,Ann,Acme,acme.com,10,x"]), name="Words")
    body = login(acme_marketer).get(f"/o/acme/audiences/imports/{result['import_id']}/").content.decode()
    mapping = re.search(r"<dt>Mapping</dt><dd>(.*?)</dd>", body, re.S)
    assert mapping, "no mapping line"
    line = mapping.group(1)
    assert "<code>Website</code> → Company domain" in line and "<code>Company</code> → Company" in line
    assert "company_name" not in line and "→ domain" not in line
    # in the file's column order
    assert line.index("<code>Email</code>") < line.index("<code>Company</code>") < line.index("<code>Website</code>")


def test_imports_tables_scroll_inside_their_card(tmp_path: Path, login: Any, acme_marketer: Any) -> None:
    """Ten columns widened the whole page on an 800 px window (tests/browser/test_layout.py measures it)."""
    run(write(tmp_path, "wide.csv", [HEADER, "ann@example.com,,Ann,Acme,acme.com,10,x"]), name="Wide")
    client = login(acme_marketer)
    for url in ("/o/acme/audiences/imports/", "/o/acme/audiences/import/"):
        body = client.get(url).content.decode()
        assert re.search(r'<div class="scroll-x">\s*<table>\s*<thead><tr><th scope="col">#</th>', body), url
