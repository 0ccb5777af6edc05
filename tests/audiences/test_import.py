"""Audience imports through the `import_audience` command: counts, quarantine, dedupe, versions, faults."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from audiences import records
from audiences.models import Audience, AudienceImport, AudienceVersion, ImportStatus
from audiences.services import version_restore
from p360.core.jobs.services import run_job

pytestmark = pytest.mark.django_db

HEADER = "Email,Phone,First Name,Company,Website,Employees,Notes"


def write(tmp_path: Path, name: str, lines: list[str], encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def run(path: Path, *args: str, org: str = "acme", name: str = "Imported") -> dict[str, Any]:
    out = io.StringIO()
    call_command("import_audience", "--org", org, str(path), "--name", name, "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def members(audience_id: int, org: str = "acme") -> list[dict[str, Any]]:
    with schema_context(f"org_{org}"):
        audience = Audience.objects.get(pk=audience_id)
        frame = records.read_version(audience.current_version_id)
    return frame.to_dicts()


def quarantine(result: dict[str, Any]) -> list[dict[str, str]]:
    with default_storage.open(result["quarantine_file"], "rb") as handle:
        return list(csv.DictReader(io.StringIO(handle.read().decode())))


def reconciles(result: dict[str, Any]) -> bool:
    return result["rows_read"] == result["rows_loaded"] + result["rows_quarantined"] + result["duplicates"]


def test_dirty_file_counts_reconcile_and_bad_rows_are_quarantined_with_line_and_reason(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dirty.csv",
        [
            HEADER,
            "ann@example.com,415-555-0101,Ann,Acme,www.acme.com,10,a",  # line 2
            "not-an-email,415-555-0102,Bob,Acme,acme.com,10,b",  # 3: invalid email
            "ANN@example.com,,Ann again,Acme,acme.com,10,c",  # 4: duplicate of line 2
            "short,row",  # 5: ragged
            "",  # 6: blank line, not a row
            "carl@example.com,415-555-0103,Carl,Initech,initech.com,20,d,EXTRA",  # 7: too many fields
            ",,,,,,",  # 8: no values
            'dora@example.com,415-555-0104,Dora,Hooli,hooli.com,30,=HYPERLINK("x")',  # 9: formula kept as data
        ],
    )
    result = run(path)
    assert result["rows_read"] == 7
    assert result["rows_loaded"] == 2
    assert result["duplicates"] == 1
    assert result["rows_quarantined"] == 4
    assert reconciles(result)
    assert set(result) >= {
        "rows_read",
        "rows_loaded",
        "rows_quarantined",
        "duplicates",
        "audience_id",
        "quarantine_file",
    }
    reasons = {int(row["line"]): row["reason"] for row in quarantine(result)}
    assert reasons[3] == "invalid email address"
    assert reasons[5] == "expected 7 fields, found 2"
    assert reasons[7] == "expected 7 fields, found 8"
    assert reasons[8] == "row has no values"
    loaded = members(result["audience_id"])
    assert [m["line"] for m in loaded] == [2, 9]
    assert loaded[0]["email_normalized"] == "ann@example.com"


def test_first_last_and_merge_pick_the_documented_row(tmp_path: Path) -> None:
    lines = [
        "Email,First Name,Company",
        "a@x.com,,First Co",
        "A@X.com,Alice,",
        "b@x.com,Bob,B Co",
    ]
    path = write(tmp_path, "dupes.csv", lines)
    first = run(path, "--dedupe", "first", name="First")
    last = run(path, "--dedupe", "last", name="Last")
    merge = run(path, "--dedupe", "merge", name="Merge")
    for result in (first, last, merge):
        assert (result["rows_read"], result["rows_loaded"], result["duplicates"]) == (3, 2, 1)
    by_email = {r["email_normalized"]: r for r in members(first["audience_id"])}
    assert (by_email["a@x.com"]["first_name"], by_email["a@x.com"]["company_name"]) == (None, "First Co")
    by_email = {r["email_normalized"]: r for r in members(last["audience_id"])}
    assert (by_email["a@x.com"]["first_name"], by_email["a@x.com"]["company_name"]) == ("Alice", None)
    by_email = {r["email_normalized"]: r for r in members(merge["audience_id"])}
    assert (by_email["a@x.com"]["first_name"], by_email["a@x.com"]["company_name"]) == ("Alice", "First Co")


def test_append_dedupes_against_existing_records_and_replace_starts_over(tmp_path: Path) -> None:
    one = write(tmp_path, "one.csv", ["Email,First Name", "a@x.com,A", "b@x.com,B"])
    two = write(tmp_path, "two.csv", ["Email,First Name", "b@x.com,B2", "c@x.com,C"])
    first = run(one, name="Growing")
    second = run(two, name="Growing")
    assert second["audience_id"] == first["audience_id"]
    assert (second["rows_loaded"], second["duplicates"], second["version"]) == (1, 1, 2)
    assert sorted(m["email_normalized"] for m in members(second["audience_id"])) == ["a@x.com", "b@x.com", "c@x.com"]
    # `last` against existing records: the file's row replaces the old one.
    three = write(tmp_path, "three.csv", ["Email,First Name", "a@x.com,A3"])
    third = run(three, "--dedupe", "last", name="Growing")
    assert (third["rows_loaded"], third["duplicates"]) == (1, 0)
    names = {m["email_normalized"]: m["first_name"] for m in members(third["audience_id"])}
    assert names == {"a@x.com": "A3", "b@x.com": "B", "c@x.com": "C"}
    replaced = run(two, "--mode", "replace", name="Growing")
    assert sorted(m["email_normalized"] for m in members(replaced["audience_id"])) == ["b@x.com", "c@x.com"]
    with schema_context("org_acme"):
        assert Audience.objects.get(pk=first["audience_id"]).record_count == 2


def test_the_identical_file_is_recognised_and_not_loaded_twice(tmp_path: Path) -> None:
    path = write(tmp_path, "same.csv", ["Email", "a@x.com", "b@x.com"])
    run(path, name="Once")
    with pytest.raises(CommandError, match="already loaded"):
        run(path, name="Once")
    with schema_context("org_acme"):
        audience = Audience.objects.get(name="Once")
        assert audience.record_count == 2
        assert audience.versions.count() == 1


def test_versions_can_be_restored_and_old_ones_are_pruned_by_retention(tmp_path: Path) -> None:
    results = []
    for index in range(4):
        path = write(tmp_path, f"v{index}.csv", ["Email", *[f"u{i}@v{index}.com" for i in range(index + 1)]])
        results.append(run(path, "--mode", "replace", name="Versioned"))
    with schema_context("org_acme"):
        audience = Audience.objects.get(name="Versioned")
        audience.retention_versions = 2
        audience.save()
    run(write(tmp_path, "v5.csv", ["Email", "last@x.com"]), "--mode", "replace", name="Versioned")
    with schema_context("org_acme"):
        audience.refresh_from_db()
        statuses = dict(audience.versions.values_list("number", "status"))
        assert statuses == {1: "pruned", 2: "pruned", 3: "pruned", 4: "ready", 5: "ready"}
        version_restore(version=AudienceVersion.objects.get(audience=audience, number=4), actor=None)
        audience.refresh_from_db()
        assert (audience.current_version.number, audience.record_count) == (4, 4)
        assert records.count_version(audience.current_version_id) == 4


def test_mapping_override_custom_fields_and_custom_dedupe_key(tmp_path: Path) -> None:
    path = write(
        tmp_path, "crm.csv", ["Contact,Account,Member ID", "a@x.com,Acme,M1", "b@x.com,Acme,M1", "c@x.com,Beta,M2"]
    )
    result = run(
        path,
        "--mapping",
        json.dumps({"Contact": "email", "Account": "company_name"}),
        "--dedupe-key",
        "custom.member_id",
        name="Custom",
    )
    assert (result["rows_loaded"], result["duplicates"]) == (2, 1)
    rows = members(result["audience_id"])
    assert [r["company_name"] for r in rows] == ["Acme", "Beta"]
    assert json.loads(rows[0]["custom"])  # the unmapped column is kept as a custom field


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mapping", "{not json"], "not valid JSON"),
        (["--mapping", '{"Nope": "email"}'], "does not have: Nope"),
        (["--mapping", '{"Email": "favourite_colour"}'], "unknown fields"),
        (["--dedupe-key", "custom.nope"], "cannot deduplicate"),
    ],
)
def test_bad_options_give_one_clear_error_and_load_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    path = write(tmp_path, "ok.csv", ["Email", "a@x.com"])
    with pytest.raises(CommandError, match=message):
        run(path, *args, name="Refused")
    with schema_context("org_acme"):
        assert not Audience.objects.filter(name="Refused").exists()


def test_unknown_org_and_missing_file_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.csv", ["Email", "a@x.com"])
    with pytest.raises(CommandError, match="unknown or inactive organisation"):
        run(path, org="nope")
    with pytest.raises(CommandError, match="no such file"):
        run(tmp_path / "missing.csv")


def test_an_import_into_one_org_is_invisible_to_the_other(
    tmp_path: Path, login: Any, acme_marketer: Any, globex_marketer: Any
) -> None:
    result = run(write(tmp_path, "private.csv", ["Email", "secret@acme.com"]), name="Acme private")
    import_id = result["import_id"]
    with schema_context("org_globex"):
        assert not Audience.objects.filter(name="Acme private").exists()
        assert not AudienceImport.objects.filter(source_name="private.csv").exists()
    outsider = login(globex_marketer)
    for url in (
        f"/o/acme/audiences/imports/{import_id}/",
        f"/o/acme/audiences/imports/{import_id}/quarantine.csv",
        f"/o/acme/api/v1/imports/{import_id}",
        f"/o/acme/api/v1/audiences/{result['audience_id']}/members?format=csv",
    ):
        assert outsider.get(url).status_code == 404, url
    # Same ids under the outsider's own org do not reach acme's rows either.
    response = outsider.get(f"/o/globex/api/v1/audiences/{result['audience_id']}/members?format=csv")
    assert b"secret@acme.com" not in b"".join(getattr(response, "streaming_content", [response.content]))
    insider = login(acme_marketer)
    body = b"".join(
        insider.get(f"/o/acme/api/v1/audiences/{result['audience_id']}/members?format=csv").streaming_content
    )
    assert b"secret@acme.com" in body


UID2_VECTORS = {
    "USER@example.com": "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
    "MyEmail@example.com": "FsGNM28LJQ8OLZB0Us65ZYp07NrovJSGTCMSKnLMJ6U=",
    "My.Email@example.com": "4itTvG+HEnTzpiqzejyu1yFPwU1nYhWpaiQvz62hyB8=",
    "JaneSaoirse+Work@example.com": "KKruSBUjDNO069iMUVImVQZm6RrAGZKeOtrD9mwogYA=",
    "Jane.Saoirse@gmail.com": "ku4mBX7Z3qJTXWyLFB1INzkyR2WZGW4ANSJUiW21iI8=",
}


def test_members_csv_carries_the_official_uid2_hashes_and_neutralises_formulas(
    tmp_path: Path, login: Any, acme_marketer: Any
) -> None:
    lines = ["Email,Company", *[f"{email},=SUM(1+1)" for email in UID2_VECTORS]]
    result = run(write(tmp_path, "uid2.csv", lines), name="UID2 vectors")
    client = login(acme_marketer)
    response = client.get(f"/o/acme/api/v1/audiences/{result['audience_id']}/members?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["email"]: row["email_sha256"] for row in rows} == UID2_VECTORS
    assert {row["company_name"] for row in rows} == {"=SUM(1+1)"}  # exact: a machine file (issue 15)
    page = client.get(f"/o/acme/audiences/{result['audience_id']}/members/download/", {"format": "csv"})
    people = list(csv.DictReader(io.StringIO(b"".join(page.streaming_content).decode())))
    assert {row["company_name"] for row in people} == {"'=SUM(1+1)"}


def test_the_import_pages_show_history_report_and_quarantine(tmp_path: Path, login: Any, acme_marketer: Any) -> None:
    result = run(
        write(tmp_path, "report.csv", [HEADER, "ann@example.com,,Ann,A,a.com,1,x", "bad,,B,B,b.com,1,y"]),
        name="Reported",
    )
    client = login(acme_marketer)
    history = client.get("/o/acme/audiences/imports/?q=report.csv")
    assert history.status_code == 200 and b"report.csv" in history.content
    detail = client.get(f"/o/acme/audiences/imports/{result['import_id']}/")
    assert detail.status_code == 200
    assert b"2 read = 1 loaded + 1 quarantined + 0 duplicates" in detail.content
    download = client.get(f"/o/acme/audiences/imports/{result['import_id']}/quarantine.csv")
    assert b"invalid email address" in b"".join(download.streaming_content)
    status = client.get(f"/o/acme/audiences/imports/{result['import_id']}/status.json").json()
    assert status["reconciles"] is True and status["status"] == ImportStatus.SUCCEEDED
    assert client.get(f"/o/acme/audiences/{result['audience_id']}/").status_code == 200
    assert client.get("/o/acme/audiences/").status_code == 200


def test_mapping_page_proposes_fields_and_starting_applies_the_choices(
    tmp_path: Path, login: Any, acme_marketer: Any
) -> None:
    from audiences.services import import_create

    path = write(tmp_path, "map.csv", ["Work Email,Given name,Member No", "a@x.com,A,1", "b@x.com,B,2"])
    with schema_context("org_acme"):
        imp = import_create(audience_name="Mapped", source_name="map.csv", actor=acme_marketer, path=path)
    client = login(acme_marketer)
    page = client.get(f"/o/acme/audiences/imports/{imp.pk}/map/")
    assert page.status_code == 200
    assert b'<option value="email" selected>' in page.content and b"a@x.com" in page.content
    # Keep the member number as an integer custom field, skip the name, rename the audience.
    form = {
        "map-0": "email",
        "map-1": "__skip__",
        "map-2": "__custom__",
        "type-2": "integer",
        "audience_name": "Mapped by hand",
        "mode": "append",
        "dedupe_rule": "first",
        "default_country": "US",
    }
    response = client.post(f"/o/acme/audiences/imports/{imp.pk}/map/", form)
    assert response.status_code == 302 and response["Location"].endswith(f"/imports/{imp.pk}/")
    with schema_context("org_acme"):
        imp.refresh_from_db()
    assert imp.status == ImportStatus.QUEUED
    run_job(imp.job_id)  # the cluster's part: on-commit hooks never fire inside the test's transaction
    with schema_context("org_acme"):
        imp.refresh_from_db()
        assert imp.mapping == {"Work Email": "email"} and imp.custom_types == {"Member No": "integer"}
        assert imp.audience_name == "Mapped by hand" and imp.status == ImportStatus.SUCCEEDED
        rows = records.read_version(Audience.objects.get(name="Mapped by hand").current_version_id).to_dicts()
    assert [r["first_name"] for r in rows] == [None, None]
    assert [json.loads(r["custom"]) for r in rows] == [{"member_no": 1}, {"member_no": 2}]


def test_mapping_page_explains_a_bad_choice_and_loads_nothing(tmp_path: Path, login: Any, acme_marketer: Any) -> None:
    from audiences.services import import_create

    path = write(tmp_path, "twice.csv", ["A,B", "a@x.com,b@x.com"])
    with schema_context("org_acme"):
        imp = import_create(audience_name="Twice", source_name="twice.csv", actor=acme_marketer, path=path)
    form = {
        "map-0": "email",
        "map-1": "email",
        "audience_name": "Twice",
        "mode": "append",
        "dedupe_rule": "first",
        "default_country": "US",
    }
    response = login(acme_marketer).post(f"/o/acme/audiences/imports/{imp.pk}/map/", form)
    assert response.status_code == 200
    assert b"each field can be mapped from one column only: email" in response.content
    with schema_context("org_acme"):
        assert not Audience.objects.filter(name="Twice").exists()
