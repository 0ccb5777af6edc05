"""Dates at the edges of Python's calendar and absurd page numbers are refused with a 400, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/o/acme/reports/?preset=custom&start=0001-01-01&end=0001-01-02",
        "/o/acme/reports/?preset=custom&start=9999-12-30&end=9999-12-31",
        "/o/acme/reports/summaries/?period=week&start=0001-01-01",
        "/o/acme/api/v1/summaries?period=week&start=0001-01-01",
        "/o/acme/api/v1/summaries?period=week&start=9999-12-27",
        "/o/acme/api/v1/attribution?model=linear&start=0001-01-01&end=0001-01-05",
        "/o/acme/reports/attribution/?start=0001-01-01&end=0001-01-05",
    ],
)
def test_dates_outside_the_calendar_are_a_400(login, acme_marketer, url):
    assert login(acme_marketer).get(url).status_code == 400


def test_a_huge_page_number_is_served(login, acme_marketer):
    assert login(acme_marketer).get("/o/acme/reports/?page=1000000000000000000").status_code == 200
