# INTERIM STUB (lead) — replaced by helper branch issue-4-normalise
from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import polars_hash as plh


@dataclass
class NormalizedBatch:
    records: pl.DataFrame
    errors: pl.DataFrame


def normalize_batch(
    df: pl.DataFrame, mapping: dict[str, str], *, custom_types: dict[str, str], default_country: str = "US"
) -> NormalizedBatch:
    cols = [pl.col("__row")]
    errs = []
    for src, f in mapping.items():
        c = pl.col(src).str.strip_chars()
        c = pl.when(c == "").then(None).otherwise(c)
        if f == "email":
            low = c.str.to_lowercase()
            cols += [c.alias("email"), low.alias("email_normalized")]
        elif f in ("revenue", "employee_count"):
            cols.append(c.str.replace_all(",", "").cast(pl.Int64, strict=False).alias(f))
        else:
            cols.append(c.alias(f))
    out = df.select(cols)
    if "email_normalized" in out.columns:
        bad = out.filter(
            pl.col("email_normalized").is_not_null()
            & ~pl.col("email_normalized").str.contains(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
        )
        src = [s for s, f in mapping.items() if f == "email"][0]
        errs.append(
            bad.select(
                pl.col("__row"),
                pl.lit(src).alias("column"),
                pl.lit("email").alias("field"),
                pl.col("email").alias("value"),
                pl.lit("invalid email address").alias("reason"),
            )
        )
        out = (
            out.join(bad.select("__row"), on="__row", how="anti")
            .with_columns(plh.col("email_normalized").chash.sha2_256().alias("x"))
            .with_columns(pl.col("x").str.decode("hex").bin.encode("base64").alias("email_sha256"))
            .drop("x")
        )
    if custom_types:
        out = out.with_columns(
            df.join(out.select("__row"), on="__row", how="semi").select(
                pl.struct(
                    [pl.col(h).alias(__import__("audiences.fields").fields.custom_field_name(h)) for h in custom_types]
                )
                .struct.json_encode()
                .alias("custom")
            )
        )
    errors = (
        pl.concat(errs)
        if errs
        else pl.DataFrame(
            schema={"__row": pl.Int64, "column": pl.String, "field": pl.String, "value": pl.String, "reason": pl.String}
        )
    )
    return NormalizedBatch(out, errors)
