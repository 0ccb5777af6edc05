"""Structured logs carry the request id, user and org."""

from __future__ import annotations

import json
import logging

import pytest

from p360.core import context
from p360.logging import JsonFormatter, RequestContextFilter

pytestmark = pytest.mark.django_db


def test_json_log_lines_carry_request_user_and_org():
    record = logging.LogRecord("p360.test", logging.INFO, __file__, 1, "imported %s rows", (42,), None)
    with context.bound(request_id="req-123456", user="7", org="acme"):
        RequestContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert {key: line[key] for key in ("message", "request_id", "user", "org", "level")} == {
        "message": "imported 42 rows",
        "request_id": "req-123456",
        "user": "7",
        "org": "acme",
        "level": "INFO",
    }


def test_responses_carry_a_request_id_and_keep_a_well_formed_incoming_one(login, acme_marketer):
    client = login(acme_marketer)
    assert len(client.get("/o/acme/").headers["X-Request-ID"]) == 32
    assert client.get("/o/acme/", HTTP_X_REQUEST_ID="trace-abcdef12").headers["X-Request-ID"] == "trace-abcdef12"
    assert client.get("/o/acme/", HTTP_X_REQUEST_ID="bad id\n").headers["X-Request-ID"] != "bad id\n"
