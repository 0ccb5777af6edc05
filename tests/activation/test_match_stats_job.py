"""The audience page never counts the UID2 match figures itself (3 s at 10M records): it shows the stored ones, marked
refreshing when the records or identities changed since, or "counting…" before the first count; a job
(`activation.match_stats`) counts and stores them in the org's own schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from activation.identities import MATCH_JOB, map_identities, refresh_match_stats
from activation.models import MatchStats
from audiences.services import version_restore
from p360.core.jobs.models import Job, JobStatus
from p360.core.jobs.services import run_job
from tests.activation.conftest import person
from tests.activation.test_uid2 import conf
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db

COUNT_SQL = "count(*) FILTER"  # the match count's own SELECT (compute_match_stats)


def _view(client: Any, slug: str, audience_id: int, capture: Any) -> tuple[str, list[str]]:
    """The audience page's HTML and the SQL it ran; jobs it queues stay queued (their on_commit is not run)."""
    with CaptureQueriesContext(connection) as queries, capture(execute=False):
        response = client.get(f"/o/{slug}/audiences/{audience_id}/")
    assert response.status_code == 200
    return response.content.decode(), [q["sql"] for q in queries.captured_queries]


def _queued(org: Any) -> list[Job]:
    return list(Job.objects.filter(kind=MATCH_JOB, org=org, status=JobStatus.QUEUED).order_by("pk"))


def test_the_page_queues_the_count_and_the_job_stores_it(
    login: Any, super_admin: Any, acme: Any, operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Match job", [person(i) for i in range(5)])
    client = login(super_admin)

    html, sql = _view(client, "acme", audience.pk, django_capture_on_commit_callbacks)
    assert not any(COUNT_SQL in q for q in sql)  # never counted inside the request
    assert "UID2 match rate: counting…" in html
    [job] = _queued(acme)
    assert job.params == {"audience_id": audience.pk}
    _view(client, "acme", audience.pk, django_capture_on_commit_callbacks)
    assert _queued(acme) == [job]  # a second view does not queue the same count again

    assert run_job(job.pk) == "succeeded"
    with schema_context(acme.schema_name):
        stored = MatchStats.objects.get(audience_id=audience.pk)
        assert stored.stats["records"] == 5 and stored.stats["mapped"] == 0
    html, sql = _view(client, "acme", audience.pk, django_capture_on_commit_callbacks)
    assert not any(COUNT_SQL in q for q in sql)
    assert "UID2 match rate: 0.0%" in html and "0 of 5 records mapped" in html and "refreshing" not in html
    assert _queued(acme) == []

    # The identities change: the page shows the last figures marked refreshing (still no count) and queues a job.
    with schema_context(acme.schema_name):
        map_identities(audience=None, due_only=False, conf=conf(operator))
    html, sql = _view(client, "acme", audience.pk, django_capture_on_commit_callbacks)
    assert not any(COUNT_SQL in q for q in sql)
    assert "0 of 5 records mapped" in html and "refreshing: counted" in html
    [job] = _queued(acme)
    assert run_job(job.pk) == "succeeded"
    api = client.get(f"/o/acme/api/v1/audiences/{audience.pk}/activation").json()
    assert api["uid2"]["state"] == "current" and api["uid2"]["mapped"] == 5 and api["match_rate"] == 1.0


def test_a_records_change_queues_the_recount_of_stored_figures(
    acme: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Restored", [person(i) for i in range(3)])
        first = audience.current_version
        assert first is not None
        with django_capture_on_commit_callbacks(execute=False):  # never viewed: counted now all the same (session 12)
            version_restore(version=first, actor=None)
        [job] = _queued(acme)
        Job.objects.filter(pk=job.pk).delete()
        audience = make_imported("Restored", [person(i) for i in range(7)])
        assert refresh_match_stats(audience)["records"] == 7
        with django_capture_on_commit_callbacks(execute=False):
            version_restore(version=first, actor=None)
    [job] = _queued(acme)
    assert job.params == {"audience_id": audience.pk}
    assert run_job(job.pk) == "succeeded"
    with schema_context(acme.schema_name):
        stored = MatchStats.objects.get(audience_id=audience.pk)
        assert stored.stats["records"] == 3 and stored.version_id == first.pk


def test_another_org_never_sees_the_figures(
    login: Any, super_admin: Any, acme: Any, globex: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with schema_context(acme.schema_name):
        mine = make_imported("Isolated", [person(i) for i in range(4)])
    with schema_context(globex.schema_name):
        theirs = make_imported("Isolated", [person(i) for i in range(2)])
    client = login(super_admin)
    _view(client, "acme", mine.pk, django_capture_on_commit_callbacks)
    [job] = _queued(acme)
    assert run_job(job.pk) == "succeeded"
    assert _queued(globex) == []
    with schema_context(globex.schema_name):
        assert not MatchStats.objects.exists()  # acme's job wrote only into acme's schema
    html, _ = _view(client, "globex", theirs.pk, django_capture_on_commit_callbacks)
    assert "UID2 match rate: counting…" in html and "of 4 records" not in html
    [other] = _queued(globex)
    assert run_job(other.pk) == "succeeded"
    api = client.get(f"/o/globex/api/v1/audiences/{theirs.pk}/activation").json()
    assert api["uid2"]["records"] == 2
    with schema_context(acme.schema_name):
        assert MatchStats.objects.get(audience_id=mine.pk).stats["records"] == 4


# --- session 12: figures ready at first view; a built audience's refresh recounts its figures ---


def test_an_import_counts_the_figures_so_the_first_view_shows_them(
    login: Any, super_admin: Any, acme: Any, tmp_path: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import io
    import json

    from django.core.management import call_command

    path = tmp_path / "fresh.csv"
    path.write_text("Email\n" + "".join(f"fresh{i}@example.com\n" for i in range(6)))
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):  # the import commits: its queued jobs run (sync queue)
        call_command("import_audience", "--org", "acme", str(path), "--name", "Fresh", "--json", stdout=out)
    audience_id = json.loads(out.getvalue())["audience_id"]
    html, sql = _view(login(super_admin), "acme", audience_id, django_capture_on_commit_callbacks)
    assert not any(COUNT_SQL in q for q in sql)
    assert "counting…" not in html and "0 of 6 records mapped" in html and "refreshing" not in html


def _built(tree_value: str) -> Any:
    from audiences.saved import built_audience_create

    tree = {"field": "last_name", "operator": "starts_with", "value": tree_value}
    return built_audience_create(name=f"Built {tree_value}", tree=tree, actor=None)


def test_a_built_audience_is_counted_when_saved_and_recounted_when_refreshed(
    login: Any, super_admin: Any, acme: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from audiences.saved import built_audience_refresh

    client = login(super_admin)
    with schema_context(acme.schema_name):
        make_imported("Universe", [person(i) for i in range(4)])
        with django_capture_on_commit_callbacks(execute=False):
            built = _built("Last")
    [job] = _queued(acme)  # saved in the builder: counted before anyone opens it
    assert job.params == {"audience_id": built.pk} and run_job(job.pk) == "succeeded"
    html, sql = _view(client, "acme", built.pk, django_capture_on_commit_callbacks)
    assert not any(COUNT_SQL in q for q in sql) and "0 of 4 records mapped" in html and "refreshing" not in html
    assert _queued(acme) == []

    # the universe grows and the audience is refreshed: its figures are stale at once (not for up to an hour)
    with schema_context(acme.schema_name):
        make_imported("Universe 2", [person(i) for i in range(10, 13)])
        with django_capture_on_commit_callbacks(execute=False):
            assert built_audience_refresh(audience=built, actor=None) == 7
    [job] = _queued(acme)
    assert job.params == {"audience_id": built.pk}
    html, _ = _view(client, "acme", built.pk, django_capture_on_commit_callbacks)
    assert "0 of 4 records mapped" in html and "refreshing: counted" in html  # the last figures, marked
    assert run_job(job.pk) == "succeeded"
    html, _ = _view(client, "acme", built.pk, django_capture_on_commit_callbacks)
    assert "0 of 7 records mapped" in html and "refreshing" not in html


def test_a_refresh_of_a_built_audience_nobody_opened_counts_nothing(
    acme: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from audiences.saved import built_audience_refresh

    with schema_context(acme.schema_name):
        make_imported("Universe", [person(i) for i in range(3)])
        with django_capture_on_commit_callbacks(execute=False):
            built = _built("Last")
        Job.objects.filter(kind=MATCH_JOB).delete()  # the count queued on save (above), never run
        with django_capture_on_commit_callbacks(execute=False):
            built_audience_refresh(audience=built, actor=None)  # the daily schedule: no figures, no count
    assert _queued(acme) == []
