"""An independent, plain-Python statement of the path rules (no polars), and a bridge to
`marketing-attribution-models` (mam) for the credit rules. Used only by the cross-check tests."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import polars as pl

KIND_RANK = {"impression": 0, "click": 0, "conversion": 1}


@dataclass
class RefEvent:
    seq: int  # file order (the event id)
    ts: dt.datetime
    kind: str
    key: str
    user: str
    value: float | None = None


@dataclass
class RefPath:
    keys: list[str]
    hours: list[float]  # age of each touch at the conversion, in hours
    converted: bool
    value: float = 0.0


@dataclass
class RefResult:
    converting: list[RefPath]
    idle: list[RefPath]
    unattributed: int
    unattributed_value: float
    no_user: int


def build_paths(events: list[RefEvent], start: dt.date, end: dt.date, lookback_days: int) -> RefResult:
    """Walk each user's events in time order: a conversion takes the touches gathered since the
    previous one that are at most `lookback_days` old, then the gathering starts again."""
    first_day = start - dt.timedelta(days=lookback_days)
    window = [e for e in events if first_day <= e.ts.date() <= end]
    lookback = dt.timedelta(days=lookback_days)
    result = RefResult([], [], 0, 0.0, 0)
    by_user: dict[str, list[RefEvent]] = defaultdict(list)
    for event in window:
        if event.user:
            by_user[event.user].append(event)
        elif event.kind == "conversion" and start <= event.ts.date() <= end:
            result.no_user += 1
            result.unattributed += 1
            result.unattributed_value += event.value or 0.0
    for user_events in by_user.values():
        user_events.sort(key=lambda e: (e.ts, KIND_RANK[e.kind], e.seq))
        gathered: list[RefEvent] = []
        for event in user_events:
            if event.kind != "conversion":
                gathered.append(event)
                continue
            touches = [t for t in gathered if event.ts - t.ts <= lookback]
            gathered = []
            if not start <= event.ts.date() <= end:
                continue
            if not touches:
                result.unattributed += 1
                result.unattributed_value += event.value or 0.0
                continue
            hours = [(event.ts - t.ts).total_seconds() / 3600 for t in touches]
            result.converting.append(RefPath([t.key for t in touches], hours, True, event.value or 0.0))
        if gathered:
            result.idle.append(RefPath([t.key for t in gathered], [0.0] * len(gathered), False))
    return result


def mam_credits(paths: RefResult, half_life_days: float) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {"conversions": {key: credit}, "revenue": {key: credit}}} computed by mam."""
    from mam import MAM

    every = paths.converting + paths.idle
    frame = pl.DataFrame(
        {
            "journey_id": [f"j{n}" for n in range(len(every))],
            "path": [" > ".join(p.keys) for p in every],
            "hours": [" > ".join(repr(h) for h in p.hours) for p in every],
            "converted": [p.converted for p in every],
            "value": [p.value for p in every],
        }
    )
    common: dict[str, Any] = {
        "format_type": "journey",
        "channels_colname": "path",
        "journey_with_conv_colname": "converted",
        "user_id_colname": "journey_id",
        "time_till_conv_colname": "hours",
    }
    counted = MAM(frame, **common)
    valued = MAM(frame, **common, conversion_value_colname="value")
    out: dict[str, dict[str, dict[str, float]]] = {}
    runs = {
        "first_touch": lambda m: m.run_first_click(),
        "last_touch": lambda m: m.run_last_click(),
        "linear": lambda m: m.run_linear(),
        "position_based": lambda m: m.run_position_based(),
        "time_decay": lambda m: m.run_time_decay(half_life_hours=half_life_days * 24),
    }
    for model, run in runs.items():
        out[model] = {
            "conversions": _as_dict(run(counted).to_polars()),
            "revenue": _as_dict(run(valued).to_polars()),
        }
    # Markov: mam's removal effects, normalised, scaled to the attributed conversions and revenue.
    effects = counted.run_markov().metadata["removal_effect"]["removal_effect"]
    total = float(effects.sum())
    conversions = float(len(paths.converting))
    revenue = sum(p.value for p in paths.converting)
    shares = {str(key): float(value) / total for key, value in effects.items()} if total else {}
    out["markov"] = {
        "conversions": {k: s * conversions for k, s in shares.items()},
        "revenue": {k: s * revenue for k, s in shares.items()},
        "removal_effect": {str(k): float(v) for k, v in effects.items()},
    }
    return out


def _as_dict(frame: pl.DataFrame) -> dict[str, float]:
    return {str(key): float(value) for key, value in zip(frame["channels"], frame["attribution"], strict=True)}
