"""Every model cross-checked on generated paths against an independent implementation:
paths by a plain-Python walk (tests/attribution/reference.py), credits by marketing-attribution-models.
Properties (hypothesis): credits are non-negative and sum to the attributed conversions and revenue."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import polars as pl
import pytest
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reporting.attribution import engine, models, paths
from tests.attribution import reference
from tests.attribution.helpers import BASE, Ev, insert_events

pytest.importorskip("mam", reason="marketing-attribution-models is in requirements-dev.txt")

KEYS = ["K1", "K2", "K3", "K4", "K5"]


def generate(seed: int, users: int = 40, events: int = 400, span_days: int = 12) -> list[Ev]:
    rng = random.Random(seed)
    out = []
    for _ in range(events):
        at = -rng.uniform(0, span_days * 24)
        at = round(at, rng.choice([0, 0, 3]))  # whole hours often: ties in time happen
        kind = rng.choices(["impression", "click", "conversion"], weights=[70, 15, 15])[0]
        user = f"u{rng.randint(1, users)}" if rng.random() > 0.03 else ""
        # Skewed keys so that models disagree.
        key = rng.choices(KEYS, weights=[5, 3, 2, 1, 1])[0]
        value = round(rng.uniform(1, 200), 2) if kind == "conversion" and rng.random() > 0.1 else None
        out.append(Ev(at, kind, key, user, value=value, cost=round(rng.uniform(0, 0.01), 6)))
    return out


def to_reference(events: list[Ev]) -> list[reference.RefEvent]:
    return [reference.RefEvent(n, e.ts, e.kind, e.key, e.user, e.value) for n, e in enumerate(events, 1)]


def compare(result: dict[str, Any], expected: dict[str, Any], ref: reference.RefResult) -> None:
    for model in models.MODELS:
        rows = result["results"][model]["rows"]
        got = {r["key"]: r["conversions"] for r in rows if r["conversions"] > 1e-9}
        want = {k: v for k, v in expected[model]["conversions"].items() if v > 1e-9}
        assert got == pytest.approx(want, abs=1e-5), model
        got_revenue = {r["key"]: r["revenue"] for r in rows if r["revenue"] > 0.004}
        want_revenue = {k: round(v, 2) for k, v in expected[model]["revenue"].items() if round(v, 2) > 0.004}
        assert got_revenue == pytest.approx(want_revenue, abs=0.011), model
    assert result["totals"]["conversions"] == len(ref.converting)
    assert result["unattributed"]["conversions"] == ref.unattributed
    assert result["unattributed"]["no_user_id"] == ref.no_user
    assert result["paths"]["non_converting"] == len(ref.idle)


@pytest.mark.django_db
@pytest.mark.parametrize(("seed", "lookback", "half_life"), [(1, 3, 7.0), (2, 30, 2.5), (3, 1, 0.5), (4, 7, 30.0)])
def test_engine_on_postgres_agrees_with_the_reference_and_mam(
    acme: Any, seed: int, lookback: int, half_life: float
) -> None:
    events = generate(seed)
    insert_events(acme, events)
    start, end = BASE.date() - dt.timedelta(days=4), BASE.date()
    ref = reference.build_paths(to_reference(events), start, end, lookback)
    assert ref.converting, "the generator must produce converting paths"
    expected = reference.mam_credits(ref, half_life)
    with schema_context(acme.schema_name):
        result = engine.run(
            engine.Params(start=start, end=end, lookback_days=lookback, half_life_days=half_life), use_cache=False
        )
    compare(result, expected, ref)
    effects = {r["key"]: r["removal_effect"] for r in result["results"]["markov"]["rows"] if r["removal_effect"]}
    assert effects == pytest.approx({k: v for k, v in expected["markov"]["removal_effect"].items() if v}, abs=1e-5)


@pytest.mark.django_db
def test_small_read_pieces_windows_and_user_slices_change_nothing(acme: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read's pieces (text values, parse chunks, day windows) and the paths' user slices are sizes only: with
    each at its smallest (a text value per few ids, a parse per value, a query per day, ~10 events per slice) the
    result is the reference's, as with the defaults."""
    events = generate(5, users=60, events=600)
    insert_events(acme, events)
    start, end, lookback, half_life = BASE.date() - dt.timedelta(days=4), BASE.date(), 5, 3.0
    ref = reference.build_paths(to_reference(events), start, end, lookback)
    expected = reference.mam_credits(ref, half_life)
    params = engine.Params(start=start, end=end, lookback_days=lookback, half_life_days=half_life)
    with schema_context(acme.schema_name):
        default = engine.run(params, use_cache=False)
        monkeypatch.setattr(paths, "_GROUP_IDS", 7)
        monkeypatch.setattr(paths, "_CHUNK", 64)
        monkeypatch.setattr(paths, "_WINDOW_BYTES", 1)
        monkeypatch.setattr(paths, "BUCKET_ROWS", 10)
        monkeypatch.setattr(models, "STEP_ROWS", 5)  # Markov counts over ~100 slices of paths
        small = engine.run(params, use_cache=False)
    compare(small, expected, ref)
    assert small == default


@pytest.mark.django_db
@pytest.mark.parametrize("slices", [2, 7])
def test_user_slices_read_apart_change_nothing(acme: Any, monkeypatch: pytest.MonkeyPatch, slices: int) -> None:
    """Reading the events one slice of users at a time (issue 17's memory) changes no figure: every event is read
    in exactly one slice, a user's events all in the same one, and the result is the reference's and the default's."""
    events = generate(11, users=60, events=600)
    insert_events(acme, events)
    start, end, lookback, half_life = BASE.date() - dt.timedelta(days=4), BASE.date(), 5, 3.0
    ref = reference.build_paths(to_reference(events), start, end, lookback)
    expected = reference.mam_credits(ref, half_life)
    params = engine.Params(start=start, end=end, lookback_days=lookback, half_life_days=half_life)
    read = {"start": start, "end": end, "lookback_days": lookback, "group_by": "campaign"}
    with schema_context(acme.schema_name):
        assert paths.read_slices(start=start, end=end, lookback_days=lookback) == 1  # a few KB: one read
        whole = paths.read_events(**read).sort("id")  # type: ignore[arg-type]
        parts = [paths.read_events(**read, part=(i, slices)) for i in range(slices)]  # type: ignore[arg-type]
        default = engine.run(params, use_cache=False)
        monkeypatch.setattr(paths, "read_slices", lambda **_: slices)
        sliced = engine.run(params, use_cache=False)
    assert pl.concat(parts).sort("id").equals(whole)
    users = [set(p["user"].cast(pl.String).to_list()) for p in parts]
    assert all(not (a & b) for i, a in enumerate(users) for b in users[i + 1 :])
    compare(sliced, expected, ref)
    assert sliced == default


# --- in memory (no database): hypothesis drives the same comparison plus the invariants ----------
def frame_of(events: list[Ev]) -> pl.DataFrame:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    kinds = {"impression": 0, "click": 1, "conversion": 2}
    return pl.DataFrame(
        {
            "id": list(range(1, len(events) + 1)),
            "user": [e.user or None for e in events],
            "ts": [int((e.ts - epoch).total_seconds() * 1_000_000) for e in events],
            "t": [kinds[e.kind] for e in events],
            "key": [e.key for e in events],
            "cost": [e.cost for e in events],
            "value": [e.value for e in events],
        },
        schema={
            "id": pl.Int64,
            "user": pl.String,
            "ts": pl.Int64,
            "t": pl.Int8,
            "key": pl.String,
            "cost": pl.Float64,
            "value": pl.Float64,
        },
    ).with_columns(pl.col("user").cast(pl.Categorical), pl.col("key").cast(pl.Categorical))


event_strategy = st.builds(
    Ev,
    at=st.integers(min_value=-24 * 9, max_value=0).map(float),
    kind=st.sampled_from(["impression", "click", "conversion"]),
    key=st.sampled_from(KEYS[:4]),
    user=st.sampled_from(["", "a", "b", "c", "d"]),
    value=st.one_of(st.none(), st.floats(min_value=0, max_value=1000).map(lambda v: round(v, 2))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(event_strategy, max_size=40),
    lookback=st.integers(min_value=1, max_value=8),
    half_life=st.floats(min_value=0.05, max_value=60),
)
def test_invariants_and_agreement_on_generated_paths(events: list[Ev], lookback: int, half_life: float) -> None:
    start, end = BASE.date() - dt.timedelta(days=3), BASE.date()
    first = start - dt.timedelta(days=lookback)
    in_window = [e for e in events if first <= e.ts.date() <= end]  # what read_events would return
    built = paths.build(frame_of(in_window), start=start, end=end, lookback_days=lookback)
    ref = reference.build_paths(to_reference(events), start, end, lookback)
    attributed = built.attributed
    assert attributed.height == len(ref.converting)
    assert built.conversions.height - attributed.height + built.no_user.height == ref.unattributed
    value = float(attributed["value"].sum()) if attributed.height else 0.0
    expected = reference.mam_credits(ref, half_life) if ref.converting else None
    for model in models.MODELS:
        frame = models.credit(model, built, half_life_days=half_life)
        credits = frame["conversions"].to_list()
        assert all(c >= -1e-12 for c in credits), model
        assert sum(credits) == pytest.approx(attributed.height, abs=1e-9), model
        assert sum(frame["revenue"].to_list()) == pytest.approx(value, rel=1e-9, abs=1e-6), model
        if expected is not None:
            got = {str(k): v for k, v in zip(frame["key"], credits, strict=True) if v > 1e-12}
            want = {k: v for k, v in expected[model]["conversions"].items() if v > 1e-12}
            assert got == pytest.approx(want, abs=1e-9), model
