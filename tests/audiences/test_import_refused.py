"""Issue 15 item 8: a refused import writes no audience, version or record. Its AudienceImport row is kept,
marked `rejected` with the reason, as the audit record shown in the import history (documented choice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from audiences.models import Audience, AudienceImport, AudienceVersion, ImportStatus
from p360.core.audit.models import AuditEvent
from tests.audiences.test_import import run, write

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("name", "content"),
    [("binary.csv", b"MZ\x90\x00\x03\x00\x00\x00"), ("empty.csv", b"")],
)
def test_a_refused_import_writes_nothing_but_its_rejected_audit_row(
    tmp_path: Path, name: str, content: bytes, login: Any, acme_marketer: Any
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with schema_context("org_acme"):
        before = (Audience.objects.count(), AudienceVersion.objects.count())
    with pytest.raises(CommandError):
        run(path, name=f"Refused {name}")
    with schema_context("org_acme"):
        assert (Audience.objects.count(), AudienceVersion.objects.count()) == before
        assert not Audience.objects.filter(name=f"Refused {name}").exists()
        imp = AudienceImport.objects.get(audience_name=f"Refused {name}")
        assert imp.status == ImportStatus.REJECTED and imp.error and imp.audience_id is None
    assert AuditEvent.objects.filter(action="audience_import.rejected", entity_id=str(imp.pk)).exists()
    history = login(acme_marketer).get("/o/acme/audiences/imports/").content.decode()
    assert f"Refused {name}" in history  # the refusal is visible, with its reason, in the history


def test_a_good_file_after_a_refusal_loads_normally(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    with pytest.raises(CommandError):
        run(bad, name="Retry me")
    result = run(write(tmp_path, "good.csv", ["Email", "ann@example.com"]), name="Retry me")
    assert result["rows_loaded"] == 1
