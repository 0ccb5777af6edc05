"""Trust (session 11): junk query strings on every marketer page and every admin changelist never give a 500.

The page half of tests/p360/test_junk_sweep.py (its own module so the two xdist workers run them side by side).
Pages come from the org URL resolver (every GET-able pattern outside the API and the admin, ids of objects that
exist, do not exist and overflow bigint), changelists from both admin sites' registries; the query names are
the ones the views read, every admin filter's parameters and the admin's own (`p`, `o`, `q`, date hierarchy).

Session 12: each page's query names are swept one at a time (sent together, a 400 for one name could hide
another's crash). The names are the ones the page's view reads, recorded while it runs (QueryDict reads from
the view on, absent names included), so a name missing from PAGE_QUERY_NAMES is swept as soon as a view reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin import ModelAdmin
from django.contrib.admin.sites import AdminSite
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.datastructures import MultiValueDict

from p360.core.admin_sites import global_admin, org_admin
from p360.urls_tenant import urlpatterns as org_page_patterns
from tests.p360.test_junk_sweep import Route, Sweep, _fill, _routes

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Every name a page view reads from its query string (grep request.GET / parse_query), and the admin's own.
PAGE_QUERY_NAMES = [
    "q", "status", "page", "p", "limit", "offset", "format", "audience", "week", "month", "start", "end",
    "period", "ids", "domain", "what", "user_id", "template", "seconds", "purpose", "kind", "destination",
    "completed", "a", "b", "campaign", "custom", "preset", "program", "sort", "source", "spend", "table",
    "model", "group_by", "lookback_days", "half_life_days", "level", "date", "o", "version", "segment",
]  # fmt: skip
JUNK_QUERY_VALUES = [
    "-1", "abc", "99999999999999999999", "1e309", "NaN", "2026-13-45", "99999-01-01", "x" * 3000,
    "%ED%A0%80", "1,abc,-1", "",
]  # fmt: skip
PAGE_PATH_VALUES = {"int": ["1", "3", "99999999999999999999"], "slug": ["industry", "junk"], "str": ["x"],
                    "uuid": ["00000000-0000-0000-0000-000000000000"], "path": ["x"]}  # fmt: skip
ADMIN_QUERY = ["p", "o", "q", "all", "e", "_facets", "_to_field", "_changelist_filters"]
ADMIN_FILTER_VALUES = ["abc", "99999999999999999999", "9999"]


@pytest.fixture
def quiet(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.DEBUG = True  # the `make up` default
    settings.P360_DEBUG_PAGES = False
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "data" / "media"
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _page_paths(route: Route) -> list[str]:
    first = {name: PAGE_PATH_VALUES[conv][0] for name, conv in route.params}
    paths = [_fill(route, first)]
    for name, conv in route.params:
        paths += [_fill(route, {**first, name: value}) for value in PAGE_PATH_VALUES[conv][1:]]
    return list(dict.fromkeys(paths))


class _Reads:
    """The query names read by view code (and what it renders) during one request."""

    recording = False  # on from process_view (after every middleware's own reads) to the response
    names: set[str] = set()


class RecordQueryReads:
    """Test-only middleware (last in MIDDLEWARE): turns recording on just before the view runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        finally:
            _Reads.recording = False

    def process_view(self, request: HttpRequest, *args: Any) -> None:
        _Reads.recording = True


@contextmanager
def _recording_query_reads() -> Iterator[None]:
    """Wrap QueryDict's readers by key (`[]`, get, getlist, `in`; forms and templates read through these).
    A view that reads the query whole (iterates it, urlencodes it) sees every name: the all-names pass covers it."""

    def keyed(original: Callable[..., Any]) -> Callable[..., Any]:
        def read(self: QueryDict, key: str, *args: Any, **kwargs: Any) -> Any:
            if _Reads.recording:
                _Reads.names.add(key)
            return original(self, key, *args, **kwargs)

        return read

    readers: dict[str, Callable[..., Any]] = {
        "__getitem__": MultiValueDict.__getitem__,
        "_getlist": MultiValueDict._getlist,
        "__contains__": dict.__contains__,
    }
    for name, method in readers.items():
        setattr(QueryDict, name, keyed(method))
    try:
        yield
    finally:
        for name in readers:
            delattr(QueryDict, name)  # QueryDict defines none of them itself: its parents' come back


def _names_read(client: Any, url: str) -> list[str]:
    """The names the page reads: with no query, every name at "1", every name empty (conditional reads)."""
    _Reads.names = set()
    for value in (None, "1", ""):
        query = "" if value is None else "?" + "&".join(f"{name}={value}" for name in PAGE_QUERY_NAMES)
        client.get(url + query)
    return sorted(_Reads.names)


def test_marketer_pages_never_answer_500_to_junk_queries(
    login: Any, acme_marketer: Any, quiet: None, settings: Any
) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.RecordQueryReads"]
    client = login(acme_marketer)
    client.raise_request_exception = False
    routes = [
        route
        for route in _routes(org_page_patterns)
        if not route.template.startswith(("api/", "admin/")) and not route.template.endswith((".csv", "download/"))
    ]
    sweep = Sweep(api_error_shape=False)
    swept: dict[str, list[str]] = {}
    for route in routes:
        for path in _page_paths(route):
            url = f"/o/acme/{path}"
            sweep.check(f"GET {url}", client.get(url))
        url = f"/o/acme/{_page_paths(route)[0]}"
        for value in JUNK_QUERY_VALUES:  # every name at once: junk meeting junk (`sort` with `dir`, ...)
            query = "&".join(f"{name}={value}" for name in PAGE_QUERY_NAMES)
            sweep.check(f"GET {url}?{query[:120]}", client.get(f"{url}?{query}"))
        with _recording_query_reads():
            names = _names_read(client, url)
        swept[route.template] = names
        for name in names:  # one name per request: nothing else in the query can answer 400 first
            for value in JUNK_QUERY_VALUES:
                sweep.check(f"GET {url}?{name}={value[:60]}", client.get(url, {name: value}))
    read = sum(len(names) for names in swept.values())
    print(f"marketer page junk sweep: {len(routes)} patterns, {read} names read, {sweep.requests} requests")
    assert swept["reports/"] and swept["audiences/imports/"], swept  # the recorder sees what views read
    assert not sweep.failures, f"{len(sweep.failures)} failures:\n" + "\n".join(sweep.failures[:40])


def _filter_parameters(model_admin: ModelAdmin) -> list[list[str]]:
    """The query names a changelist's filters read, grouped: Django's field filters refuse a bad value as an
    incorrect lookup (so one request per field, all its lookups at once); custom filters and the date hierarchy
    (where session 11 found a 500) one name per request."""
    groups: list[list[str]] = []
    for item in model_admin.list_filter:
        field = item[0] if isinstance(item, tuple) else item
        if isinstance(field, str):
            groups.append([f"{field}__exact", f"{field}__id__exact", f"{field}__isnull", f"{field}__gte"])
        elif getattr(field, "parameter_name", None):
            groups.append([str(field.parameter_name)])
    if model_admin.date_hierarchy:
        groups += [[f"{model_admin.date_hierarchy}__{part}"] for part in ("year", "month", "day")]
    return groups


def _changelists(site: AdminSite, prefix: str) -> Iterator[tuple[str, ModelAdmin]]:
    for model, model_admin in site._registry.items():
        yield f"{prefix}{model._meta.app_label}/{model._meta.model_name}/", model_admin


@pytest.mark.parametrize("site", ["global", "org"])
def test_admin_changelists_never_answer_500_to_junk_queries(
    login: Any, super_admin: Any, quiet: None, site: str
) -> None:
    client = login(super_admin)
    client.raise_request_exception = False
    changelists = list(
        _changelists(global_admin, "/admin/") if site == "global" else _changelists(org_admin, "/o/acme/admin/")
    )
    sweep = Sweep(api_error_shape=False)
    for url, model_admin in changelists:
        sweep.check(f"GET {url}", client.get(url))
        for value in JUNK_QUERY_VALUES[:4]:
            query = "&".join(f"{name}={value}" for name in ADMIN_QUERY)
            sweep.check(f"GET {url}?{query[:120]}", client.get(f"{url}?{query}"))
        for names in _filter_parameters(model_admin):
            for value in ADMIN_FILTER_VALUES:
                query = "&".join(f"{name}={value}" for name in names)
                sweep.check(f"GET {url}?{query}", client.get(f"{url}?{query}"))
    print(f"{site} admin junk sweep: {len(changelists)} changelists, {sweep.requests} requests")
    assert not sweep.failures, f"{len(sweep.failures)} failures:\n" + "\n".join(sweep.failures[:40])
