"""Reports by program: attribution `group_by=program` joins REDS campaign ids to programs; the metrics API
groups by program (reconciled with pacing in test_pacing)."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from campaigns.models import Campaign, Program
from campaigns.services import campaign_save, program_save
from tests.attribution.helpers import DAY, conv, imp, insert_events

pytestmark = pytest.mark.django_db


def test_attribution_group_by_program(acme: Any, globex: Any, login: Any, acme_marketer: Any) -> None:
    with schema_context(acme.schema_name):
        p1 = program_save(program=Program(name="North IO", budget="100.00"), actor=None)
        p2 = program_save(program=Program(name="South IO", budget="100.00"), actor=None)
        campaign_save(campaign=Campaign(program=p1, name="A camp", external_id="A", budget="10.00"), actor=None)
        campaign_save(campaign=Campaign(program=p1, name="B camp", external_id="B", budget="10.00"), actor=None)
        campaign_save(campaign=Campaign(program=p2, name="C camp", external_id="C", budget="10.00"), actor=None)
    insert_events(
        acme,
        [imp(-3, "A"), imp(-2, "B"), imp(-1, "C"), conv(0, value=90.0), imp(-1, "Z", user="u2"), conv(0, user="u2")],
    )
    params = {"model": "linear", "start": DAY.isoformat(), "end": DAY.isoformat(), "group_by": "program"}
    body = login(acme_marketer).get("/o/acme/api/v1/attribution", params).json()
    rows = {row["name"]: row for row in body["rows"]}
    assert rows["North IO"]["key"] == str(p1.pk) and rows["North IO"]["conversions"] == pytest.approx(2 / 3)
    assert rows["South IO"]["conversions"] == pytest.approx(1 / 3)
    assert rows["(no program)"]["conversions"] == pytest.approx(1.0)  # campaign Z is unknown
    assert sum(r["conversions"] for r in body["rows"]) == pytest.approx(2.0)
    # globex cannot read acme's report; its own has no programs
    assert login(acme_marketer).get("/o/globex/api/v1/attribution", params).status_code == 404


def test_summaries_group_by_program(acme: Any, manager: Any, login: Any, tmp_path: Any) -> None:
    from tests.ingestion.helpers import SURFSIDE_HEADER, ingest, set_cpm, write_csv

    set_cpm(acme, "10")
    with schema_context(acme.schema_name):
        p = program_save(program=Program(name="Summary IO", budget="1000.00"), actor=None)
        campaign_save(campaign=Campaign(program=p, name="Brand", source="surfside", budget="500.00"), actor=None)
    rows = [
        ["2026-11-16", "Brand", "S", "P", "C", "1000", "5", "1", "0"],
        ["2026-11-17", "Other", "S", "P", "C", "500", "0", "0", "0"],
    ]
    ingest("surfside", str(write_csv(tmp_path / "s.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    body = login(manager).get("/o/acme/api/v1/summaries", {"period": "week", "start": "2026-11-16"}).json()
    programs = {row["program"]: row["spend"] for row in body["by_program"]}
    assert programs == {"Summary IO": "10.00", None: "5.00"}


# --- the reporting dashboard and its exports by program (point 8) --------------------------------------

REPORT_RANGE = {"preset": "custom", "start": "2026-11-16", "end": "2026-11-22"}


@pytest.fixture
def program_metrics(acme: Any, globex: Any, tmp_path: Any) -> dict[str, Any]:
    """acme: two programs (one with a hostile name) and an unassigned campaign; globex: its own program."""
    from tests.ingestion.helpers import SURFSIDE_HEADER, ingest, set_cpm, write_csv

    with schema_context(acme.schema_name):
        north = program_save(program=Program(name="North IO", budget="1000.00"), actor=None)
        evil = program_save(program=Program(name="=HYPERLINK(1) <b>&", budget="1000.00"), actor=None)
        for program, name in ((north, "Brand"), (north, "Retarget"), (evil, "Promo")):
            campaign_save(campaign=Campaign(program=program, name=name, source="surfside", budget="100.00"), actor=None)
    with schema_context(globex.schema_name):
        program_save(program=Program(name="Globex Canary IO", budget="1000.00"), actor=None)
    rows = [
        ["2026-11-16", "Brand", "S", "P", "C", "1000", "5", "1", "3.50"],
        ["2026-11-17", "Retarget", "S", "P", "C", "3000", "9", "2", "0"],
        ["2026-11-18", "Promo", "S", "P", "C", "2000", "1", "0", "0"],
        ["2026-11-19", "Unassigned", "S", "P", "C", "500", "0", "0", "0"],
        ["2026-11-30", "Brand", "S", "P", "C", "9999", "0", "0", "0"],  # outside the range
    ]
    for org in (acme, globex):
        set_cpm(org, "10")
        ingest("surfside", str(write_csv(tmp_path / f"{org.slug}.csv", SURFSIDE_HEADER, rows)), "--org", org.slug)
    return {"north": north.pk, "evil": evil.pk}


def _api_programs(client: Any) -> dict[Any, dict[str, Any]]:
    params = {"start": REPORT_RANGE["start"], "end": REPORT_RANGE["end"], "group_by": "program"}
    body = client.get("/o/acme/api/v1/metrics", params).json()
    return {row["program_id"]: row for row in body["rows"]}


def test_dashboard_has_a_by_program_table_formatted_and_equal_to_the_metrics_api(
    program_metrics: Any, acme_marketer: Any, login: Any
) -> None:
    from p360.core import formatting

    client = login(acme_marketer)
    api = _api_programs(client)
    assert api[program_metrics["north"]]["spend"] == "40.00" and api[None]["spend"] == "5.00"
    html = client.get("/o/acme/reports/", REPORT_RANGE).content.decode()
    assert "Performance by program" in html
    section = html.split('data-table="programs"', 1)[1].split("</table>", 1)[0]
    for program_id, row in api.items():
        cells = section.split(f'data-program="{program_id or ""}"', 1)[1].split("</tr>", 1)[0]
        for key in ("spend", "impressions", "ctr", "cpa", "conversion_revenue"):
            assert formatting.metric(key, row[key]) in cells, (program_id, key)  # the one formatting layer
    assert "North IO" in section and "(no program)" in section
    assert "=HYPERLINK(1) &lt;b&gt;&amp;" in section  # escaped on the page
    assert "Globex Canary IO" not in html
    assert "export.csv?" in html and "table=program" in html and "export.xlsx?" in html
    # the source filter narrows the programs too (nothing from Facebook)
    empty = client.get("/o/acme/reports/", {**REPORT_RANGE, "source": "facebook"}).content.decode()
    assert 'data-table="programs"' not in empty


def test_program_csv_and_xlsx_exports_carry_exact_values(program_metrics: Any, acme_marketer: Any, login: Any) -> None:
    import csv
    import io
    from decimal import Decimal

    from tests.p360.test_exports import xlsx_cells

    client = login(acme_marketer)
    api = _api_programs(client)
    response = client.get("/o/acme/reports/export.csv", {**REPORT_RANGE, "table": "program"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, body = table[0], table[1:]
    assert header[:3] == ["program_id", "program", "impressions"]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    assert len(body) == len(api) == 3
    for program_id, row in api.items():
        line = by_id["" if program_id is None else str(program_id)]
        for key in ("impressions", "spend", "ctr", "cpa", "roas", "conversion_revenue"):
            assert line[key] == ("" if row[key] is None else str(row[key])), key  # exact, as the API
    assert by_id[""]["program"] == "(no program)"
    assert by_id[str(program_metrics["evil"])]["program"] == "'=HYPERLINK(1) <b>&"  # formula-safe

    xlsx = client.get("/o/acme/reports/export.xlsx", {**REPORT_RANGE, "table": "program"})
    assert xlsx.status_code == 200 and xlsx["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = xlsx_cells(xlsx.content)
    assert [text for _, text in sheet[0][:3]] == ["program_id", "program", "impressions"]
    names = {row[1][1]: row for row in sheet[1:]}
    assert names["=HYPERLINK(1) &lt;b&gt;&amp;"][1][0] == "text"  # a text cell: never evaluated
    north = names["North IO"]
    spend_col = header.index("spend")
    assert north[spend_col][0] == "n" and Decimal(north[spend_col][1]) == Decimal(
        api[program_metrics["north"]]["spend"]
    )
    assert any(cell == ("text", "(no program)") for row in sheet[1:] for cell in row)  # its empty id: no cell
    from p360.core.audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="reporting.exported", org_slug="acme", after__format="xlsx").exists()
    bad = client.get("/o/acme/reports/export.xlsx", {**REPORT_RANGE, "table": "planet"})
    assert bad.status_code == 400 and b"Cannot export" in bad.content


def test_pdf_report_has_the_programs_table(program_metrics: Any, acme_marketer: Any, login: Any) -> None:
    import io

    from pypdf import PdfReader

    from p360.core import formatting

    client = login(acme_marketer)
    api = _api_programs(client)
    response = client.post("/o/acme/reports/export.pdf?preset=custom&start=2026-11-16&end=2026-11-22")
    assert response.status_code == 200
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "Programs (3)" in text and "North IO" in text and "(no program)" in text and "<b>&" in text
    assert formatting.metric("spend", api[program_metrics["north"]]["spend"]) in text
    assert "Globex Canary IO" not in text


def test_program_exports_are_isolated(program_metrics: Any, globex_marketer: Any, login: Any) -> None:
    client = login(globex_marketer)
    assert client.get("/o/acme/reports/export.xlsx", {**REPORT_RANGE, "table": "program"}).status_code == 404
    assert client.get("/o/acme/reports/export.csv", {**REPORT_RANGE, "table": "program"}).status_code == 404
    own = client.get("/o/globex/reports/export.csv", {**REPORT_RANGE, "table": "program"})
    text = b"".join(own.streaming_content).decode()
    assert "Globex Canary IO" not in text and "North IO" not in text  # globex's campaigns have no program


# --- the program filter and the program -> campaigns drill-down (reports page, exports, metrics API) ----------


def test_program_filter_narrows_the_page_its_exports_and_the_metrics_api_alike(
    program_metrics: Any, acme_marketer: Any, login: Any
) -> None:
    import csv
    import io

    client = login(acme_marketer)
    north = program_metrics["north"]
    span = {"start": REPORT_RANGE["start"], "end": REPORT_RANGE["end"]}
    api_rows = client.get("/o/acme/api/v1/metrics", {**span, "group_by": "campaign", "program": north}).json()
    assert {r["campaign"] for r in api_rows["rows"]} == {"Brand", "Retarget"}
    assert api_rows["totals"]["spend"] == "40.00"
    # the page: KPIs, the campaign table and the programs table hold North only; the drill-down link is there
    html = client.get("/o/acme/reports/", {**REPORT_RANGE, "program": north}).content.decode()
    assert 'data-testid="program-filter"' in html and "North IO" in html
    programs = html.split('data-table="programs"', 1)[1].split("</table>", 1)[0]
    assert f'data-program="{north}"' in programs and "(no program)" not in programs
    assert "Promo" not in html.split("<main", 1)[-1].split('name="campaign"', 1)[1].split("</select>", 1)[0]
    full = client.get("/o/acme/reports/", REPORT_RANGE).content.decode()
    assert f"program={north}" in full and 'data-drill="program"' in full  # program -> its campaigns
    # the exports carry the filter and the API's exact values
    response = client.get("/o/acme/reports/export.csv", {**REPORT_RANGE, "program": north, "table": "campaign"})
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["campaign"] for row in table} == {"Brand", "Retarget"}
    by_name = {r["campaign"]: r for r in api_rows["rows"]}
    assert all(row["spend"] == by_name[row["campaign"]]["spend"] for row in table)
    export = client.get("/o/acme/reports/export.csv", {**REPORT_RANGE, "program": north, "table": "program"})
    program_rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [(r["program_id"], r["spend"]) for r in program_rows] == [(str(north), "40.00")]
    # the PDF says what it covers
    from pypdf import PdfReader

    pdf = client.post(f"/o/acme/reports/export.pdf?preset=custom&start=2026-11-16&end=2026-11-22&program={north}")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "program North IO" in text and "Promo" not in text


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "99999999999999999999"])
def test_a_bad_program_filter_is_a_clear_error(program_metrics: Any, acme_marketer: Any, login: Any, value: str):
    client = login(acme_marketer)
    assert client.get("/o/acme/reports/", {**REPORT_RANGE, "program": value}).status_code == 400
    assert client.get("/o/acme/reports/export.csv", {**REPORT_RANGE, "program": value}).status_code == 400
    api = client.get("/o/acme/api/v1/metrics", {"start": "2026-11-16", "end": "2026-11-22", "program": value})
    assert api.status_code == 400 and "program" in api.json()["error"]["details"]["fields"]


def test_another_orgs_program_id_gives_none_of_its_data(
    program_metrics: Any, globex_marketer: Any, acme_marketer: Any, login: Any
) -> None:
    north = program_metrics["north"]
    other = login(globex_marketer)
    # globex's own schema: the id is globex's program (or none), never acme's North with its campaigns
    page = other.get("/o/globex/reports/", {**REPORT_RANGE, "program": north}).content.decode()
    assert "North IO" not in page and "Retarget" not in page
    # the metrics API names an id of no program of globex (session 12; it answered empty rows): globex has one
    # program, so at least one of acme's two ids is none of globex's
    both = f"{north},{program_metrics['evil']}"
    body = other.get("/o/globex/api/v1/metrics", {"start": "2026-11-16", "end": "2026-11-22", "program": both})
    assert body.status_code == 400 and "unknown program" in body.json()["error"]["message"], body.content
    assert "North IO" not in body.content.decode()
    export = other.get("/o/globex/reports/export.csv", {**REPORT_RANGE, "program": north, "table": "campaign"})
    assert "Retarget" not in b"".join(export.streaming_content).decode()
    assert other.get("/o/acme/reports/", {**REPORT_RANGE, "program": north}).status_code == 404
    # and an acme id that is no program at all: a 400 naming it (session 12), not everything
    own = login(acme_marketer).get(
        "/o/acme/api/v1/metrics", {"start": "2026-11-16", "end": "2026-11-22", "program": 987654}
    )
    assert own.status_code == 400 and own.json()["error"]["details"]["fields"]["program"] == [
        "unknown program 987654 (not a program of this organisation)"
    ]


@pytest.mark.parametrize("spelling", ["comma", "repeated"])
def test_the_metrics_api_takes_several_programs(
    program_metrics: Any, acme_marketer: Any, login: Any, spelling: str
) -> None:
    client = login(acme_marketer)
    north, evil = program_metrics["north"], program_metrics["evil"]
    span = "start=2026-11-16&end=2026-11-22&group_by=campaign"
    query = f"program={north},{evil}" if spelling == "comma" else f"program={north}&program={evil}"
    body = client.get(f"/o/acme/api/v1/metrics?{span}&{query}").json()
    assert {r["campaign"] for r in body["rows"]} == {"Brand", "Retarget", "Promo"}  # not "Unassigned"
    assert body["totals"]["spend"] == "60.00"
    one = client.get(f"/o/acme/api/v1/metrics?{span}&program={north}").json()
    assert {r["campaign"] for r in one["rows"]} == {"Brand", "Retarget"} and one["totals"]["spend"] == "40.00"
    # a repeated id counts once
    again = client.get(f"/o/acme/api/v1/metrics?{span}&program={north}&program={north},{north}").json()
    assert again["totals"] == one["totals"]


@pytest.mark.parametrize("extra", ["987654", "abc", "", "-1"])
def test_one_bad_program_among_several_is_a_400_naming_it(
    program_metrics: Any, acme_marketer: Any, login: Any, extra: str
) -> None:
    client = login(acme_marketer)
    north = program_metrics["north"]
    span = "start=2026-11-16&end=2026-11-22"
    for query in (f"program={north},{extra}", f"program={north}&program={extra}"):
        response = client.get(f"/o/acme/api/v1/metrics?{span}&{query}")
        if extra == "":  # an empty item is no id: the other id alone
            assert response.status_code == 200, (query, response.content)
            continue
        error = response.json()["error"]
        assert response.status_code == 400 and set(error["details"]["fields"]) == {"program"}, (query, error)
        assert (extra in error["message"]) if extra.isdigit() else ("ids" in error["message"]), error
