"""A local stand-in for TTD's REST API v3 campaign and ad group endpoints, over real HTTP.

`TTD-Auth` required (401 otherwise). `POST /v3/campaign|adgroup` creates (returns the object with its
`CampaignId`/`AdGroupId`), `PUT` replaces, `GET /v3/campaign/<id>` reads. `fail_next(n, status)` answers
the next n calls with that status; `calls` records (method, path)."""

from __future__ import annotations

import json
from typing import Any

from tests.standin import ANY_PATH, StandIn, StandInHandler


class _Handler(StandInHandler):
    stand_in: TtdStandIn

    def _route(self) -> None:
        stand_in = self.stand_in
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        forced = stand_in.next_forced()
        if forced is not None:
            return self._json(forced, {"Message": "try again"})
        if self.headers.get("TTD-Auth") != stand_in.token:
            return self._json(401, {"Message": "unauthorised"})
        parts = self.path.strip("/").split("/")  # v3, kind[, id]
        kind = parts[1] if len(parts) > 1 else ""
        if kind not in stand_in.objects:
            return self._json(404, {"Message": "no such endpoint"})
        with stand_in.lock:
            store = stand_in.objects[kind]
            id_field = "CampaignId" if kind == "campaign" else "AdGroupId"
            if self.command == "GET":
                obj = store.get(parts[2]) if len(parts) > 2 else None
                return self._json(200 if obj else 404, obj or {"Message": "not found"})
            if self.command == "POST":
                stand_in.counter += 1
                new_id = f"{kind[:2]}{stand_in.counter}"
                store[new_id] = {**body, id_field: new_id}
                return self._json(200, store[new_id])
            obj_id = body.get(id_field, "")
            if obj_id not in store:
                return self._json(404, {"Message": "not found"})
            store[obj_id] = dict(body)
            return self._json(200, store[obj_id])

    do_GET = _route
    do_POST = _route
    do_PUT = _route


class TtdStandIn(StandIn):
    handler = _Handler
    base_path = "/v3"

    def __init__(self, token: str = "ttd-token") -> None:
        super().__init__()
        self.token = token
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"campaign": {}, "adgroup": {}}
        self.calls: list[tuple[str, str]] = []  # (method, path)
        self.counter = 1000

    def clear_state(self) -> None:
        self.objects = {"campaign": {}, "adgroup": {}}

    def call(self, handler: StandInHandler, status: int) -> tuple[str, str]:
        return (handler.command, handler.path)

    def fail_next(self, n: int, status: int = 503) -> None:  # type: ignore[override]  # any path, n times
        super().fail_next(ANY_PATH, [status] * n)

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "GET"]
