"""Trust (session 11): every org API path answers junk with a status below 500 and the JSON error body, in
every mode (DEBUG on, the `make up` default, and off); marketer pages and admin changelists never answer 500.

A hand-written, deterministic sweep (the schemathesis run in test_api_fuzz.py generates from the documented
schema; this one drives what the schema does not say: every URL pattern of the resolver, every HTTP method,
raw bodies no JSON encoder writes, NaN/Infinity/1e309, 2**63, lone surrogates, NUL in paths and bodies, junk
path ids and junk query strings). The paths come from the URL resolver and the field and parameter names from
the OpenAPI document, so a new endpoint is swept as soon as it is routed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver
from django_tenants.utils import schema_context

from p360.urls_tenant import api_patterns
from tenants.services import api_token_create

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

A = "/o/acme/api/v1/"

# --- what is sent -------------------------------------------------------------------------------------------

# Raw JSON literals put where a value goes: what a JSON encoder would refuse to write, past every column.
JUNK_LITERALS = [
    "9223372036854775808",  # 2**63: one past bigint
    "-9223372036854775809",  # -2**63 - 1
    "1" + "0" * 30,
    "1e309",  # parsed as inf by Python
    "NaN",
    "Infinity",
    "1e-400",
    "-1",
    "true",
    "null",
    "[]",
    "{}",
    '""',
    json.dumps("x" * 20_000),
    '"a\\u0000b"',  # NUL
    '"\\ud800"',  # a lone surrogate: not encodable to UTF-8
    json.dumps("\u202eevil\u200b\ufeff\U0001f600 \u0301"),  # RTL override, zero-width, BOM, emoji, combining
    '"2026-13-45"',
    '"abc"',
    '"9223372036854775808"',
    '"\' OR 1=1 --"',
]

# Whole bodies that are not what any endpoint wants.
JUNK_BODIES: list[tuple[bytes, str]] = [
    (b'{"name": ', "application/json"),  # malformed
    (b"[]", "application/json"),
    (b"null", "application/json"),
    (b'"text"', "application/json"),
    (b"123", "application/json"),
    (b"NaN", "application/json"),
    (b"\xff\xfe\x00{", "application/json"),  # not UTF-8
    (b"", "application/json"),
    (b'{"a": 1}', "text/plain"),
    (b"a=1&b=%00&c=%FF", "application/x-www-form-urlencoded"),
    (b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n', "multipart/form-data; boundary=x"),
    (b"--x\r\ngarbage", "multipart/form-data; boundary=x"),
    (b"{}", "application/json; charset=klingon"),
]

# Path parameter values, by converter: the resolver already refuses what its converter cannot match.
PATH_VALUES = {
    "int": ["1", "3", "0", "9223372036854775807", "9223372036854775808", "99999999999999999999999"],
    "str": ["u1", "x" * 5000, "%00", "%E2%80%AE%F0%9F%98%80", "%ED%A0%80", "..%2F..", "' OR 1=1 --"],
    "slug": ["junk", "activate", "pause", "a" * 3000],
    "uuid": ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    "path": ["x"],
}
# What no converter matches, for each pattern with a parameter: a 404 with the error body.
NON_MATCHING = ["abc", "-1", "1.5", "%00", "%ED%A0%80"]

JUNK_QUERY_VALUES = [
    "-1",
    "abc",
    str(10**9),
    "9223372036854775808",
    "1e309",
    "NaN",
    "2026-13-45",
    "99999-01-01",
    "junk",
    "x" * 5000,
    "%ED%A0%80",
    "1,2,abc",
    "",
]
GENERIC_QUERY_NAMES = [
    "page", "page_size", "limit", "offset", "ordering", "format", "date", "start", "end", "q", "search", "id",
]  # fmt: skip
METHODS = ["get", "head", "options", "post", "put", "patch", "delete"]
BODY_METHODS = ["post", "put", "patch"]
# Plausible values for the documented query parameters not under test (so the junk one is the one judged).
VALID_QUERY = {
    "start": "2026-01-01", "end": "2026-01-31", "period": "week", "model": "linear", "group_by": "campaign",
    "program": "1", "format": "json", "date": "2026-01-01", "user_id": "u1", "destination": "ttd",
}  # fmt: skip


# Plausible bodies of the endpoints that take structured input, with `<<name>>` slots: each slot in turn gets
# every leaf junk value while the others keep their default (so the junk one is what the endpoint judges).
TEMPLATES: list[tuple[str, str, str, dict[str, str]]] = [
    ("post", "audiences/preview",
     '{"tree": {"op": "and", "children": [{"field": "revenue", "operator": "gt", "value": <<v>>},'
     ' {"field": "employee_count", "operator": "between", "value": [<<low>>, 10]},'
     ' {"field": <<field>>, "operator": "eq", "value": "US"}]}, "sample": <<sample>>}',
     {"v": "10", "low": "1", "field": '"country"', "sample": "10"}),
    ("post", "audiences",
     '{"name": <<name>>, "tree": {"field": "country", "operator": "in", "value": ["US", <<v>>]}}',
     {"name": '"n"', "v": '"CA"'}),
    ("patch", "audiences/1", '{"tree": {"field": "revenue", "operator": "lte", "value": <<v>>}}', {"v": "1"}),
    ("post", "segments",
     '{"name": "s", "type": "independent", "rule": {"event_type": "orders", "attribute": "sum", "property": "value",'
     ' "operator": "gt", "value": <<v>>, "window_minutes": <<w>>}}',
     {"v": "1", "w": "60"}),
    ("patch", "segments/1", '{"active": <<v>>}', {"v": "false"}),
    ("post", "events",
     '{"event_id": <<id>>, "user_id": "u1", "event_type": "orders", "timestamp": <<ts>>,'
     ' "attributes": {"value": <<v>>}}',
     {"id": '"e1"', "ts": '"2026-01-01T00:00:00Z"', "v": "1"}),
    ("post", "programs",
     '{"name": "p", "budget": <<budget>>, "start": <<start>>, "end": "2026-12-31"}',
     {"budget": '"100.00"', "start": '"2026-01-01"'}),
    ("post", "campaigns",
     '{"program": <<program>>, "name": "c", "budget": <<budget>>, "start": "2026-01-01", "end": "2026-02-01"}',
     {"program": "1", "budget": '"10"'}),
    ("post", "line-items",
     '{"campaign": <<campaign>>, "name": "li", "budget": "10", "bid": <<bid>>, "pricing_model": "cpm",'
     ' "pacing": "even"}',
     {"campaign": "1", "bid": '"1.5"'}),
]  # fmt: skip
LEAF_LITERALS = [
    "9223372036854775808", "-9223372036854775809", "1" + "0" * 30, "1e309", "NaN", "-Infinity", "1e-400", "-1",
    "true", "null", "[]", "{}", '"abc"', '"2026-13-45"', json.dumps("x" * 20_000), '"\\ud800"',
]  # fmt: skip


def _template_bodies(text: str, defaults: dict[str, str]) -> Iterator[bytes]:
    for slot in defaults:
        for literal in LEAF_LITERALS:
            values = {**defaults, slot: literal}
            yield re.sub(r"<<(\w+)>>", lambda m, values=values: values[m[1]], text).encode()


# --- what is checked ----------------------------------------------------------------------------------------


@dataclass
class Sweep:
    """The failures of one sweep, and how many requests it sent."""

    api_error_shape: bool
    requests: int = 0
    failures: list[str] | None = None

    def check(self, label: str, response: Any) -> None:
        self.requests += 1
        if self.failures is None:
            self.failures = []
        problem = _problem(response, self.api_error_shape and label.split(" ", 1)[0] != "HEAD")
        if problem:
            self.failures.append(f"{label} -> {response.status_code} {problem}")


def _problem(response: Any, api: bool) -> str:
    if response.status_code >= 500:
        return "server error: " + _text(response)[:300]
    if not api or response.status_code < 400:
        return ""
    if not response.get("Content-Type", "").startswith("application/json"):
        return f"not JSON ({response.get('Content-Type')}): {_text(response)[:200]}"
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return f"not the error body: {_text(response)[:200]}"
    if not (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("details"), dict)
    ):
        return f"not the error shape: {error!r:.200}"
    return ""


def _text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return "<streaming>"
    return response.content.decode("utf-8", "replace")


# --- what is swept ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    template: str  # "audiences/{int:pk}/members"
    params: tuple[tuple[str, str], ...]  # (name, converter)


_PART = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[Route]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            params = tuple((m["name"], m["conv"] or "str") for m in _PART.finditer(route))
            yield Route(_PART.sub(lambda m: "{" + m["name"] + "}", route), params)


def _fill(route: Route, values: dict[str, str]) -> str:
    return route.template.format(**values)


def _path_variants(route: Route) -> list[str]:
    """The route with each parameter junked in turn (the others at their first, plausible value)."""
    base = {name: PATH_VALUES[conv][0] for name, conv in route.params}
    variants = [_fill(route, base)]
    for name, conv in route.params:
        for value in PATH_VALUES[conv][1:] + NON_MATCHING:
            variants.append(_fill(route, {**base, name: value}))
    return list(dict.fromkeys(variants))


def _schema_key(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


@dataclass
class Operation:
    fields: list[str]
    query: list[str]


def _schema_operations(client: Client) -> dict[tuple[str, str], Operation]:
    """(normalised path, method) -> the body field names and query parameter names the OpenAPI document gives."""
    doc = client.get("/api/schema/?format=json").json()
    components = doc.get("components", {}).get("schemas", {})

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    out: dict[tuple[str, str], Operation] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            body = op.get("requestBody", {}).get("content", {})
            schema = resolve(next(iter(body.values()), {}).get("schema", {})) if body else {}
            fields = list(schema.get("properties", {}))
            query = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
            out[(_schema_key(path.removeprefix("/o/{slug}/api/v1/")), method)] = Operation(fields, query)
    return out


def _body_with(fields: list[str], literal: str) -> bytes:
    return ("{" + ", ".join(f"{json.dumps(f)}: {literal}" for f in fields) + "}").encode()


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["nodebug", "debug"])
def debug_mode(request: Any, settings: Any, tmp_path: Path) -> bool:
    settings.DEBUG = request.param
    settings.P360_DEBUG_PAGES = False
    settings.DATA_DIR = tmp_path / "data"  # uploads stage files: under this test's tmp dir
    settings.MEDIA_ROOT = tmp_path / "data" / "media"
    return bool(request.param)


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """Thousands of expected 4xx warnings (and their formatting) would dominate the run: errors only."""
    import logging

    loggers = [logging.getLogger(name) for name in ("django.request", "p360.core.api_errors", "segments")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture
def api(acme_marketer: Any, globex: Any) -> Client:
    # An object only globex holds (id 3): acme's URLs with that id must answer as for an unknown id.
    from audiences.models import Audience

    with schema_context(globex.schema_name):
        Audience.objects.create(name="globex-only", record_count=1)
    _, token = api_token_create(user=acme_marketer, name="junk-sweep")
    # An API client's Accept header: with DEBUG on, Django serves its error pages as text/plain to such a client.
    return Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/json", raise_request_exception=False)


# --- the sweeps ---------------------------------------------------------------------------------------------


def _sweep_route(api: Client, route: Route, operations: dict[tuple[str, str], Operation], sweep: Sweep) -> None:
    key = _schema_key(route.template)
    path = _fill(route, {name: PATH_VALUES[conv][0] for name, conv in route.params})
    for method in METHODS:  # every method on the plausible path: 405s are the error body too
        sweep.check(f"{method.upper()} {A}{path}", api.generic(method.upper(), A + path))
    for junk_path in _path_variants(route)[1:]:  # junk ids: GET, and DELETE where the route deletes
        for method in ("get", "delete") if (key, "delete") in operations else ("get",):
            sweep.check(f"{method.upper()} {A}{junk_path}", api.generic(method.upper(), A + junk_path))
    for method in BODY_METHODS:
        verb = method.upper()
        operation = operations.get((key, method))
        if operation is None and method != "post":
            continue
        for body, content_type in JUNK_BODIES:
            sweep.check(f"{verb} {A}{path} {body[:30]!r}", api.generic(verb, A + path, body, content_type))
        if operation is None:
            continue
        for literal in JUNK_LITERALS:
            body = _body_with(operation.fields or ["name", "id"], literal)
            sweep.check(f"{verb} {A}{path} {body[:80]!r}", api.generic(verb, A + path, body, "application/json"))
    if (key, "get") not in operations:
        return  # a route without GET answers 405 before reading its query string (checked above)
    # Junk query strings: every generic name at once, then each documented parameter alone beside valid ones.
    for value in JUNK_QUERY_VALUES:
        query = "&".join(f"{name}={value}" for name in GENERIC_QUERY_NAMES)
        sweep.check(f"GET {A}{path}?{query[:150]}", api.get(f"{A}{path}?{query}"))
    documented = operations.get((key, "get"), Operation([], [])).query
    for name in documented:
        for value in JUNK_QUERY_VALUES:
            query = "&".join(f"{other}={VALID_QUERY.get(other, '')}" for other in documented if other != name)
            url = f"{A}{path}?{name}={value}&{query}"
            sweep.check(f"GET {url[:200]}", api.get(url))


def test_every_org_api_path_answers_junk_with_the_error_body(api: Client, debug_mode: bool, quiet_logs: None) -> None:
    routes = list(_routes(api_patterns))
    operations = _schema_operations(api)
    assert len(routes) >= 45 and len(operations) >= 40, "the resolver or the OpenAPI document lost paths"
    sweep = Sweep(api_error_shape=True)
    for route in routes:
        _sweep_route(api, route, operations, sweep)
    for method, path, text, defaults in TEMPLATES:
        for body in _template_bodies(text, defaults):
            label = f"{method.upper()} {A}{path} {body[:160]!r}"
            sweep.check(label, api.generic(method.upper(), A + path, body, "application/json"))
    print(f"org API junk sweep (debug={debug_mode}): {len(routes)} patterns, {sweep.requests} requests")
    assert not sweep.failures, f"{len(sweep.failures)} failures:\n" + "\n".join(sweep.failures[:40])
