"""The six credit models (the contract's credit rules), each over prepared `Paths`.

Every function returns a frame `key, conversions, revenue` (plus model extras) whose `conversions`
sum to the number of attributed conversions and whose `revenue` sums to their conversion value.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from reporting.attribution.paths import Paths

HEURISTIC_MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
MODELS = (*HEURISTIC_MODELS, "markov")
LABELS = {
    "first_touch": "First touch",
    "last_touch": "Last touch",
    "linear": "Linear",
    "time_decay": "Time decay",
    "position_based": "Position based",
    "markov": "Data-driven (Markov)",
}


def _weight(model: str, half_life_days: float) -> pl.Expr:
    pos, n = pl.col("pos"), pl.col("n")
    if model == "first_touch":
        return (pos == 0).cast(pl.Float64)
    if model == "last_touch":
        return (pos == n - 1).cast(pl.Float64)
    if model == "linear":
        return 1.0 / n.cast(pl.Float64)
    if model == "time_decay":
        # 2^(-age/h) normalised per conversion; ages shifted by the path's youngest touch first,
        # which cancels in the normalisation and keeps long lookbacks from underflowing to 0/0.
        age = pl.col("age_days")
        raw = (2.0 ** (-(age - age.min().over("conv")) / half_life_days)).alias("raw")
        return raw / raw.sum().over("conv")
    if model == "position_based":
        middle = 0.2 / (n.cast(pl.Float64) - 2.0)
        return (
            pl.when(n == 1)
            .then(1.0)
            .when(n == 2)
            .then(0.5)
            .when((pos == 0) | (pos == n - 1))
            .then(0.4)
            .otherwise(middle)
        )
    raise ValueError(f"unknown heuristic model {model!r}")


def heuristic(model: str, paths: Paths, *, half_life_days: float = 7.0) -> pl.DataFrame:
    """Per-touch weights (summing to 1 per conversion) aggregated by key."""
    return (
        paths.touches.lazy()
        .with_columns(_weight(model, half_life_days).alias("w"))
        .group_by("key")
        .agg(pl.col("w").sum().alias("conversions"), (pl.col("w") * pl.col("value")).sum().alias("revenue"))
        .collect()
    )


START, CONV, NULL = -1, -2, -3


STEP_ROWS = 1_000_000  # transitions are counted over slices of paths of about this many steps: memory stays flat


def _transitions(paths: Paths) -> tuple[pl.DataFrame, list[str]]:
    """First-order transition counts over converting and non-converting paths, keys as indices.

    Consecutive repeats of one key are collapsed: a self-loop does not change the probability of
    reaching a conversion nor any removal effect, it only rescales a state's other transitions.
    Paths are independent, so the counts are summed over slices of whole paths (path number modulo the slice
    count keeps each path's steps together and in order): counting 9M steps at once took ~1 GB (issue 17).
    """
    converting = paths.touches.select(pl.col("conv").cast(pl.UInt64).alias("path"), "key", pl.lit(True).alias("conv"))
    offset = (paths.touches["conv"].max() or 0) + 1  # type: ignore[operator]
    idle = paths.idle.select((pl.col("path") + offset).alias("path"), "key", pl.lit(False).alias("conv"))
    steps = pl.concat([converting, idle], how="vertical_relaxed")
    # Keys stay categorical over the steps; only the few distinct keys become strings, sorted so the state numbers
    # do not depend on category order.
    keys = sorted(steps["key"].unique().cast(pl.String).to_list())
    index = pl.DataFrame({"key": keys, "k": list(range(len(keys)))}, schema={"key": pl.String, "k": pl.Int64})
    index = index.with_columns(pl.col("key").cast(steps.schema["key"]))
    slices = max(1, steps.height // STEP_ROWS)
    counts = [
        _count(steps if slices == 1 else steps.filter(pl.col("path") % slices == part), index) for part in range(slices)
    ]
    return pl.concat(counts).group_by("src", "dst").agg(pl.col("count").sum()), keys


def _count(steps: pl.DataFrame, index: pl.DataFrame) -> pl.DataFrame:
    """src, dst, count of whole paths' steps (path, key, conv; each path's steps together and in order)."""
    steps = steps.join(index, on="key", how="left", maintain_order="left").drop("key")
    same_path = pl.col("path") == pl.col("path").shift(1)
    repeat = (same_path & (pl.col("k") == pl.col("k").shift(1))).fill_null(False)
    steps = steps.filter(~repeat)
    inner = steps.select(
        pl.when(pl.col("path") == pl.col("path").shift(1))
        .then(pl.col("k").shift(1))
        .otherwise(START)
        .cast(pl.Int64)
        .alias("src"),
        pl.col("k").cast(pl.Int64).alias("dst"),
    )
    is_last = pl.col("path").shift(-1).is_null() | (pl.col("path") != pl.col("path").shift(-1))
    last = steps.filter(is_last).select(
        pl.col("k").cast(pl.Int64).alias("src"),
        pl.when(pl.col("conv")).then(CONV).otherwise(NULL).cast(pl.Int64).alias("dst"),
    )
    return pl.concat([inner, last]).group_by("src", "dst").agg(pl.len().alias("count"))


def removal_effects(paths: Paths) -> tuple[pl.DataFrame, float]:
    """(frame key, removal_effect; the chain's conversion probability).

    With Q the transient-to-transient probabilities (start + one state per key) and r the one-step
    conversion probabilities, N = (I - Q)^-1 and x = N r. Removing key k sends its visitors to the
    null state, so P(conversion without k) = x_start - h_k x_k with h_k = N[start, k] / N[k, k] the
    probability of ever reaching k: one inverse gives every removal effect (h_k x_k / x_start).
    """
    if paths.touches.is_empty() and paths.idle.is_empty():
        return pl.DataFrame(schema={"key": pl.String, "removal_effect": pl.Float64}), 0.0
    counts, keys = _transitions(paths)
    size = len(keys) + 1  # state 0 = start, state k + 1 = key k
    total = np.zeros((size, size))
    to_conv = np.zeros(size)
    out = np.zeros(size)
    src = counts["src"].to_numpy() + 1
    dst = counts["dst"].to_numpy()
    count = counts["count"].to_numpy().astype(float)
    np.add.at(out, src, count)
    moving = dst >= 0
    np.add.at(total, (src[moving], dst[moving] + 1), count[moving])
    converting = dst == CONV
    np.add.at(to_conv, src[converting], count[converting])
    out[out == 0] = 1.0
    q = total / out[:, None]
    r = to_conv / out
    fundamental = np.linalg.inv(np.eye(size) - q)
    x = fundamental @ r
    p_conv = float(x[0])
    if p_conv <= 0:
        effects = np.zeros(len(keys))
    else:
        reach = fundamental[0, 1:] / np.diag(fundamental)[1:]
        effects = np.clip(reach * x[1:] / p_conv, 0.0, 1.0)
    return pl.DataFrame(
        {"key": keys, "removal_effect": effects}, schema={"key": pl.String, "removal_effect": pl.Float64}
    ), p_conv


def markov(paths: Paths) -> pl.DataFrame:
    """Attributed conversions (and their value) shared by key in proportion to removal effects."""
    effects, _ = removal_effects(paths)
    attributed = paths.attributed
    conversions = float(attributed.height)
    revenue = float(attributed["value"].sum()) if attributed.height else 0.0
    total = float(effects["removal_effect"].sum()) if effects.height else 0.0
    share = pl.col("removal_effect") / total if total > 0 else pl.lit(0.0)
    return effects.with_columns(share.alias("share")).with_columns(
        (pl.col("share") * conversions).alias("conversions"), (pl.col("share") * revenue).alias("revenue")
    )


def credit(model: str, paths: Paths, *, half_life_days: float = 7.0) -> pl.DataFrame:
    """`key` (string), `conversions`, `revenue` (+ `removal_effect` for markov)."""
    if model == "markov":
        return markov(paths)
    frame = heuristic(model, paths, half_life_days=half_life_days)
    return frame.with_columns(pl.col("key").cast(pl.String))
