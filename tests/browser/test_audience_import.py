"""The import studio in Chromium: a file dropped on the import page uploads, loses its connection at
about 60 %, resumes, lands on the mapping page; the marketer confirms the mapping, the job runs, and the
report shows counts that reconcile and the quarantined row. Screenshots in var/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from audiences.models import AudienceImport, ImportStatus
from p360.core.jobs.services import run_job
from tests.uploads.test_browser_upload import _drop, _shoot, _sign_in, _tus_traffic

pytestmark = [pytest.mark.browser, pytest.mark.django_db]
CHUNK = 64 * 1024


def _file() -> bytes:
    rows = ["E-mail,First Name,Company,Website"]
    rows += ["USER@example.com,Uma,Acme,www.acme.com", "Jane.Saoirse@gmail.com,Jane,Acme,acme.com"]
    rows += ["not-an-email,Bad,Acme,acme.com", "user@EXAMPLE.com,Dup,Acme,acme.com"]
    rows += [f"person{i}@example.com,P{i},Company {i},company{i}.com" for i in range(12_000)]
    return ("\n".join(rows) + "\n").encode()


def test_drop_interrupt_resume_map_and_read_the_report(
    browser_page: Any, live_url: str, acme_marketer: Any, screenshot_dir: Any, tmp_path: Any
) -> None:
    settings.DATA_DIR = tmp_path  # staging, media and import work files under the test's own dir
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    page.goto("/o/acme/audiences/import/")
    page.wait_for_function("() => document.querySelector('[data-uploader]').p360Uploader")
    page.evaluate(f"() => {{ document.querySelector('[data-uploader]').p360Uploader.chunkSize = {CHUNK}; }}")
    data = _file()
    chunks = -(-len(data) // CHUNK)
    traffic = _tus_traffic(page, cut_after_patches=int(chunks * 0.6))
    _drop(page, data, "crm-export.csv")

    status = page.locator("[data-role=status]")
    expect(status).to_contain_text("retrying", timeout=15_000)
    page.context.set_offline(True)
    expect(status).to_contain_text("Connection lost", timeout=15_000)
    _shoot(page, screenshot_dir, "import-upload-interrupted.png")
    traffic["cut"] = False
    with page.expect_navigation(url=re.compile(r"/o/acme/audiences/imports/\d+/map/"), timeout=30_000):
        page.context.set_offline(False)
    assert traffic["posts"] == 1 and traffic["aborted"] >= 1

    # The mapping page proposes a field for each column, shown against the first rows.
    expect(page.locator("h1")).to_contain_text("crm-export.csv")
    expect(page.locator("#map-0")).to_have_value("email")
    expect(page.locator("#map-3")).to_have_value("domain")
    page.fill("#audience_name", "Browser import")
    _shoot(page, screenshot_dir, "import-mapping.png")
    with page.expect_navigation(url=re.compile(r"/o/acme/audiences/imports/\d+/$")):
        page.click("#start-import")
    with schema_context("org_acme"):
        imp = AudienceImport.objects.get(audience_name="Browser import")
    assert imp.status == ImportStatus.QUEUED and imp.job_id
    expect(page.locator("[data-field=status_label]")).to_have_text("Queued")
    report = page.url
    # The page polls its status; the live server shares this thread's connection, so park the page
    # while the job runs here (the task cluster's part: on-commit hooks never fire in the test transaction).
    page.goto("about:blank")
    run_job(imp.job_id)
    page.goto(report)
    expect(page.locator("[data-testid=reconciliation]")).to_contain_text(
        "12,004 read = 12,002 loaded + 1 quarantined + 1 duplicates"
    )
    expect(page.get_by_text("invalid email address")).to_be_visible()
    expect(page.get_by_role("link", name="Download quarantined rows")).to_be_visible()
    _shoot(page, screenshot_dir, "import-report.png")
    with schema_context("org_acme"):
        imp.refresh_from_db()
    assert imp.status == ImportStatus.SUCCEEDED and imp.reconciles
