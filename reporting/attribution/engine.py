"""One attribution run: parameters, paths read once, every requested model, a cached result."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from django.core.cache import cache

from reporting import periods
from reporting.attribution import models, paths, selectors

GROUPS = tuple(paths.GROUP_COLUMNS)
MAX_RANGE_DAYS = 366
LOOKBACK_RANGE = (1, 90)
CACHE_SECONDS = 15 * 60


@dataclass(frozen=True)
class Params:
    start: dt.date
    end: dt.date
    models: tuple[str, ...] = models.MODELS
    group_by: str = "campaign"
    lookback_days: int = 30
    half_life_days: float = 7.0

    def public(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "group_by": self.group_by,
            "lookback_days": self.lookback_days,
            "half_life_days": self.half_life_days,
        }


class BadParams(ValueError):
    """A parameter the engine refuses; `field` names it (the API's 400 details)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check(params: Params) -> Params:
    """Refuse what cannot be computed honestly (the API and the page share these rules)."""
    for name, day in (("start", params.start), ("end", params.end)):
        if not periods.EARLIEST <= day <= periods.LATEST:
            raise BadParams(name, f"{name} must be between {periods.EARLIEST} and {periods.LATEST}")
    if params.end < params.start:
        raise BadParams("end", "end is before start")
    if (params.end - params.start).days + 1 > MAX_RANGE_DAYS:
        raise BadParams("end", f"a range covers at most {MAX_RANGE_DAYS} days")
    unknown = [m for m in params.models if m not in models.MODELS]
    if unknown or not params.models:
        raise BadParams(
            "model", f"unknown model {unknown[0] if unknown else ''!r}; use one of {', '.join(models.MODELS)} or all"
        )
    if params.group_by not in GROUPS:
        raise BadParams("group_by", f"unknown group {params.group_by!r}; use one of {', '.join(GROUPS)}")
    low, high = LOOKBACK_RANGE
    if not low <= params.lookback_days <= high:
        raise BadParams("lookback_days", f"lookback_days must be between {low} and {high}")
    if not params.half_life_days > 0 or params.half_life_days > 365:
        raise BadParams("half_life_days", "half_life_days must be greater than 0 and at most 365")
    return params


@dataclass
class Timings:
    read_s: float = 0.0
    paths_s: float = 0.0
    models_s: dict[str, float] = field(default_factory=dict)


def _money(value: float, places: int = 2) -> float:
    return round(float(value), places)


def _rows(
    credit: pl.DataFrame, cost: pl.DataFrame, names: dict[str, str], *, keep_keys: list[str]
) -> list[dict[str, Any]]:
    frame = (
        pl.DataFrame({"key": keep_keys}, schema={"key": pl.String})
        .join(credit.with_columns(pl.col("key").cast(pl.String)), on="key", how="left")
        .join(cost.select(pl.col("key").cast(pl.String), "cost", "touches"), on="key", how="left")
        .with_columns(pl.col("conversions", "revenue", "cost").fill_null(0.0), pl.col("touches").fill_null(0))
        .sort(["conversions", "key"], descending=[True, False])
    )
    rows = []
    for item in frame.iter_rows(named=True):
        revenue, cost_value = item["revenue"], item["cost"]
        row: dict[str, Any] = {
            "key": item["key"],
            "name": names.get(item["key"], item["key"]),
            "conversions": round(item["conversions"], 6),
            "revenue": _money(revenue),
            "cost": _money(cost_value),
            "roas": round(revenue / cost_value, 4) if cost_value > 0 else None,
            "touches": item["touches"],
        }
        if "removal_effect" in item:
            row["removal_effect"] = round(item["removal_effect"] or 0.0, 6)
        rows.append(row)
    return rows


def _read_and_build(params: Params, timings: Timings) -> paths.Paths:
    """The paths of every slice of users and the cost, all read from one snapshot (paths.one_snapshot)."""
    start, end, lookback = params.start, params.end, params.lookback_days
    with paths.one_snapshot():
        began = time.perf_counter()
        cost = paths.read_cost(start=start, end=end, lookback_days=lookback, group_by=params.group_by)
        slices = paths.read_slices(start=start, end=end, lookback_days=lookback)
        timings.read_s = time.perf_counter() - began
        # One slice of users at a time: its events are read, walked and dropped before the next slice is read, so
        # only one slice's events are alive at once (issue 17's memory goal). Conversion numbers continue across
        # slices.
        built_slices: list[paths.Paths] = []
        last = 0
        for index in range(slices):
            began = time.perf_counter()
            # One holder, emptied by `build`: the events' only reference is build's, which frees them slice by slice.
            events = [
                paths.read_events(
                    start=start, end=end, lookback_days=lookback, group_by=params.group_by, part=(index, slices)
                )
            ]
            timings.read_s += time.perf_counter() - began
            began = time.perf_counter()
            built_slices.append(
                paths.build(events.pop(), start=start, end=end, lookback_days=lookback, cost=cost, offset=last)
            )
            last = built_slices[-1].last
            timings.paths_s += time.perf_counter() - began
    return paths.merge(built_slices)


def compute(params: Params, timings: Timings | None = None) -> dict[str, Any]:
    """Every model in `params.models` over the current schema's REDS events (no cache)."""
    timings = timings or Timings()
    built = _read_and_build(params, timings)

    credits: dict[str, pl.DataFrame] = {}
    for model in params.models:
        began = time.perf_counter()
        credits[model] = models.credit(model, built, half_life_days=params.half_life_days)
        timings.models_s[model] = time.perf_counter() - began

    # Rows: every key with a touch in the range, or credited by a requested model.
    seen = set(built.cost["key"].cast(pl.String).to_list())
    for frame in credits.values():
        seen |= set(frame.filter(pl.col("conversions") > 0)["key"].cast(pl.String).to_list())
    keys = sorted(seen)
    names = selectors.key_names(params.group_by, keys)

    attributed = built.attributed
    no_touch = built.conversions.filter(pl.col("n") == 0)
    attributed_revenue = float(attributed["value"].sum()) if attributed.height else 0.0
    cost_total = float(built.cost["cost"].sum()) if built.cost.height else 0.0
    unattributed = {
        "conversions": no_touch.height + built.no_user.height,
        "revenue": _money(float(no_touch["value"].sum() or 0) + float(built.no_user["value"].fill_null(0).sum() or 0)),
        "no_user_id": built.no_user.height,
        "no_touch_in_window": no_touch.height,
    }
    totals = {
        "conversions": attributed.height,
        "revenue": _money(attributed_revenue),
        "cost": _money(cost_total),
        "roas": round(attributed_revenue / cost_total, 4) if cost_total > 0 else None,
        "all_conversions": built.conversions.height + built.no_user.height,
    }
    path_stats = {
        "converting": attributed.height,
        "non_converting": int(built.idle["path"].n_unique()) if built.idle.height else 0,
        "touches": built.touches.height,
        "mean_length": round(built.touches.height / attributed.height, 3) if attributed.height else 0.0,
    }
    results = {
        model: {
            "model": model,
            "label": models.LABELS[model],
            "rows": _rows(credits[model], built.cost, names, keep_keys=keys),
            "totals": totals,
            "unattributed": unattributed,
        }
        for model in params.models
    }
    return {
        "params": params.public(),
        "paths": path_stats,
        "totals": totals,
        "unattributed": unattributed,
        "results": results,
    }


def _cache_key(params: Params) -> str:
    raw = f"{params.public()}|{sorted(params.models)}|{selectors.data_stamp()}"
    # The cache's KEY_FUNCTION (django_tenants.cache.make_key) prefixes the schema: never shared across orgs.
    return "attribution:v1:" + hashlib.sha256(raw.encode()).hexdigest()


def run(params: Params, *, use_cache: bool = True) -> dict[str, Any]:
    """`compute`, cached per schema + parameters + data stamp (new REDS events invalidate it)."""
    check(params)
    key = _cache_key(params) if use_cache else ""
    if use_cache and (hit := cache.get(key)) is not None:
        return hit  # type: ignore[no-any-return]
    result = compute(params)
    if use_cache:
        cache.set(key, result, CACHE_SECONDS)
    return result


def single(result: dict[str, Any], model: str) -> dict[str, Any]:
    """The contract's shape for one model: model, rows, totals, unattributed (+ params, paths)."""
    return {**result["results"][model], "params": result["params"], "paths": result["paths"]}
