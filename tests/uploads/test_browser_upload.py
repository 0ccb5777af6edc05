"""The drop zone in headless Chromium: a file dropped on the zone (a synthesised DataTransfer)
uploads with progress, the connection drops at 60 % and comes back, the upload resumes and
completes with the server's SHA-256 equal to the file's; a reload resumes too; a file over the
limit is refused before anything is sent. Screenshots go to var/screenshots/."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from p360.core.uploads.models import Upload, UploadStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

CHUNK = 256 * 1024
DROP_JS = """
async ({b64, name, lastModified}) => {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const file = new File([bytes], name, {type: "text/csv", lastModified});
  const dt = new DataTransfer();
  dt.items.add(file);
  const zone = document.querySelector("[data-uploader] [data-role=zone]");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
  }
}
"""


def _sign_in(page: Any, live_url: str, user: Any) -> None:
    client = Client()
    client.force_login(user, backend="tenants.auth.RoleBackend")
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_url}])


def _open(page: Any, chunk: int = CHUNK) -> None:
    page.goto("/o/acme/uploads/")
    expect(page.locator("h1")).to_have_text("Uploads")
    page.wait_for_function("() => document.querySelector('[data-uploader]').p360Uploader")
    page.evaluate(f"() => {{ document.querySelector('[data-uploader]').p360Uploader.chunkSize = {chunk}; }}")


def _drop(page: Any, data: bytes, name: str, last_modified: int = 1_700_000_000_000) -> None:
    page.evaluate(DROP_JS, {"b64": base64.b64encode(data).decode(), "name": name, "lastModified": last_modified})


def _shoot(page: Any, directory: Any, name: str) -> None:
    page.screenshot(path=str(directory / name), full_page=True, animations="disabled")


def _tus_traffic(page: Any, cut_after_patches: int | None) -> dict[str, Any]:
    """Count tus requests; after `cut_after_patches` PATCHes every further one fails like a dead network."""
    state: dict[str, Any] = {"posts": 0, "patches": 0, "cut": False, "aborted": 0}

    def handle(route: Any) -> None:
        method = route.request.method
        if method == "PATCH" and state["cut"]:
            state["aborted"] += 1
            route.abort("internetdisconnected")
            return
        if method == "POST":
            state["posts"] += 1
        if method == "PATCH":
            state["patches"] += 1
            if cut_after_patches is not None and state["patches"] == cut_after_patches:
                state["cut"] = True
        route.continue_()

    page.route(re.compile(r".*/api/v1/uploads/.*"), handle)
    return state


def test_drop_interrupt_at_60_percent_resume_and_complete(browser_page, live_url, acme_marketer, screenshot_dir):
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    _open(page)
    data = os.urandom(16 * CHUNK)  # 4 MB in 16 chunks
    traffic = _tus_traffic(page, cut_after_patches=10)  # 10 of 16 chunks arrive: 62.5 %
    _drop(page, data, "crm-export.csv")

    status = page.locator("[data-role=status]")
    expect(page.locator("[data-role=filename]")).to_have_text("crm-export.csv")
    expect(status).to_contain_text("retrying", timeout=15_000)  # the 11th chunk died on the wire
    page.context.set_offline(True)
    expect(status).to_contain_text("Connection lost", timeout=15_000)
    expect(page.locator("[data-role=percent]")).to_have_text("63 %")  # 62.5 %, rounded
    expect(page.locator("[data-role=bytes]")).to_have_text("2.5 MB of 4.0 MB")
    expect(page.locator("[data-role=resume-btn]")).to_be_visible()
    _shoot(page, screenshot_dir, "upload-interrupted.png")
    with schema_context("org_acme"):
        upload = Upload.objects.get(filename="crm-export.csv")
        assert upload.offset == 10 * CHUNK and upload.status == UploadStatus.UPLOADING

    traffic["cut"] = False
    with page.expect_navigation(url=re.compile(r"/o/acme/uploads/\?completed="), timeout=30_000):
        page.context.set_offline(False)  # the "online" event resumes it
    expect(page.locator("[data-role=completed-sha256]")).to_have_text(hashlib.sha256(data).hexdigest())
    _shoot(page, screenshot_dir, "upload-complete.png")
    with schema_context("org_acme"):
        upload.refresh_from_db()
    assert upload.status == UploadStatus.COMPLETE
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.purpose == "general" and upload.created_by_email == acme_marketer.email
    assert traffic["posts"] == 1 and traffic["aborted"] >= 1
    expect(page.locator("tr", has_text="crm-export.csv")).to_contain_text("Complete")


def test_a_reload_resumes_the_same_file_where_it_stopped(browser_page, live_url, acme_marketer, screenshot_dir):
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    _open(page)
    data = os.urandom(12 * CHUNK)
    traffic = _tus_traffic(page, cut_after_patches=5)
    _drop(page, data, "events.csv")
    expect(page.locator("[data-role=status]")).to_contain_text("retrying", timeout=15_000)
    page.unroute(re.compile(r".*/api/v1/uploads/.*"))

    page.reload()  # the tab is reloaded mid-upload
    page.wait_for_function("() => document.querySelector('[data-uploader]').p360Uploader")
    expect(page.locator("[data-role=resume]")).to_contain_text("Unfinished upload of “events.csv”")
    _shoot(page, screenshot_dir, "upload-resume-offer.png")
    page.evaluate(f"() => {{ document.querySelector('[data-uploader]').p360Uploader.chunkSize = {CHUNK}; }}")
    after = _tus_traffic(page, cut_after_patches=None)
    with page.expect_navigation(url=re.compile(r"/o/acme/uploads/\?completed="), timeout=30_000):
        _drop(page, data, "events.csv")  # the same file (same name, size, type, modification time)
    assert traffic["posts"] == 1 and after["posts"] == 0  # resumed, not started again
    assert after["patches"] == 7  # only the 7 chunks the server did not have
    expect(page.locator("[data-role=completed-sha256]")).to_have_text(hashlib.sha256(data).hexdigest())


def test_a_file_over_the_limit_is_refused_before_sending(
    browser_page, live_url, acme_marketer, settings, screenshot_dir
):
    settings.P360_UPLOAD_MAX_BYTES = 1024 * 1024
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    _open(page)
    traffic = _tus_traffic(page, cut_after_patches=None)
    _drop(page, os.urandom(2 * 1024 * 1024), "huge.csv")
    expect(page.locator("[data-role=status]")).to_have_text(
        "“huge.csv” is 2.0 MB; the largest file you can upload is 1.0 MB."
    )
    assert traffic["posts"] == 0 and traffic["patches"] == 0
    expect(page.locator("[data-role=progress]")).to_be_hidden()
    _shoot(page, screenshot_dir, "upload-too-large.png")


def test_the_picker_is_reachable_by_keyboard_and_uploads(browser_page, live_url, acme_marketer, screenshot_dir):
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    _open(page)
    _shoot(page, screenshot_dir, "uploads-page-empty.png")
    pick = page.locator("[data-role=pick]")
    file_input = page.locator("[data-uploader] [data-role=input]")
    # Count the clicks the hidden file input receives: Enter on the focused button must open it.
    # (Headless Chromium does not always raise a file dialog for a page of a shared browser, so the
    # dialog event itself is not relied on; the file is then given to the same input.)
    file_input.evaluate("input => { window.__picks = 0; input.addEventListener('click', () => window.__picks++); }")
    pick.focus()
    expect(pick).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__picks === 1")
    data = b"email\nana@example.com\n"
    with page.expect_navigation(url=re.compile(r"\?completed=")):
        file_input.set_input_files({"name": "small.csv", "mimeType": "text/csv", "buffer": data})
    expect(page.locator("[data-role=completed-sha256]")).to_have_text(hashlib.sha256(data).hexdigest())
    _shoot(page, screenshot_dir, "uploads-page-history.png")


def test_org_admin_shows_uploads_with_progress(browser_page, live_url, manager, screenshot_dir):
    from p360.core.uploads import services

    with schema_context("org_acme"):
        half = services.upload_create(size=4000, metadata={"filename": "half-done.csv"}, actor=manager)
        Upload.objects.filter(pk=half.pk).update(offset=1800)
        services.upload_create(size=0, metadata={"filename": "empty.csv", "purpose": "audience_import"}, actor=manager)
    page = browser_page
    _sign_in(page, live_url, manager)
    page.goto("/o/acme/admin/uploads/upload/")
    expect(page.get_by_text("half-done.csv")).to_be_visible()
    expect(page.locator("[role=progressbar][aria-valuenow='45']")).to_have_count(1)
    _shoot(page, screenshot_dir, "upload-admin-changelist.png")
