"""Trust (session 11): a value that does not fit its column is a quarantined row (line and reason), never a
crash or a wrapped number: a 20-digit revenue (bigint), an employee count past integer, an over-long name.

Revenue is read as a decimal (`$2.5M`, `1,234.5`) and rounded, through a float: 2**63 - 1 itself is "out of range"
(the float rounds it up to 2**63); values a float holds exactly up to there load."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audiences.test_import import members, quarantine, reconciles, run, write

pytestmark = pytest.mark.django_db


def test_values_past_their_columns_are_quarantined_with_line_and_reason(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "overflow.csv",
        [
            "Email,Company,Revenue,Employees",
            "ann@example.com,Acme,1000000,10",  # line 2: fits
            "bob@example.com,Acme,12345678901234567890,10",  # 3: revenue past bigint (20 digits)
            "cat@example.com,Acme,5,3000000000",  # 4: employee count past integer (2**31 - 1)
            f"dan@example.com,{'x' * 400},5,10",  # 5: company name past its 300 characters
            "eve@example.com,Acme,-9223372036854775809,10",  # 6: one below bigint
            "fay@example.com,Acme,9000000000000000000,2147483647",  # 7: near the limits, fits
        ],
    )
    result = run(path)
    assert reconciles(result)
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (6, 2, 4)
    bad = {int(row["line"]): row for row in quarantine(result)}
    assert sorted(bad) == [3, 4, 5, 6]
    for line in (3, 4, 6):
        assert "range" in bad[line]["reason"] or "large" in bad[line]["reason"], bad[line]
    assert "too long" in bad[5]["reason"]
    loaded = {row["email"]: row for row in members(result["audience_id"])}
    assert loaded["fay@example.com"]["revenue"] == 9 * 10**18
    assert loaded["fay@example.com"]["employee_count"] == 2**31 - 1
    assert loaded["ann@example.com"]["revenue"] == 1_000_000
