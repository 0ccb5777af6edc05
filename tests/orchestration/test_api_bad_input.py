"""Bad input on the orchestration API answers with the contract's error body, never a 500."""

from __future__ import annotations

import pytest

from tests.orchestration.helpers import api
from tests.orchestration.test_api import _create_tree

pytestmark = pytest.mark.django_db


def test_duplicate_names_are_a_400(acme, manager, login):
    client = login(manager)
    _pid, cid, _lid = _create_tree(client, acme)
    r = api(client, acme, "post", "programs", {"name": "Q4 IO", "budget": "1.00"})
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"]
    r = api(client, acme, "post", "line-items", {"campaign": cid, "name": "Display", "budget": "1.00"})
    assert r.status_code == 400, r.content


def test_a_move_naming_a_line_item_without_id_is_a_400(acme, manager, login):
    client = login(manager)
    _pid, cid, lid = _create_tree(client, acme)
    r = api(client, acme, "post", f"campaigns/{cid}/reallocation", {"moves": [{"from": {}, "to": lid, "amount": "1"}]})
    assert r.status_code == 400, r.content
