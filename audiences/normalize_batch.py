"""The vectorised import normaliser: a batch of mapped columns -> typed canonical fields, UID2 hashes, field errors.

The field rules themselves (what a valid email, phone, domain, number is) are in audiences/normalize.py, the plain
Python statement of them; this module applies the same rules to whole polars columns, with a Python fallback
only where polars cannot express a rule.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import polars as pl

from audiences.fields import CUSTOM_TYPES, FIELDS, FIELDS_BY_NAME, custom_field_names
from audiences.normalize import (
    _COUNTRY_KEY_STRIP,
    _DATE_RE_TEXT,
    _DOMAIN_RE_TEXT,
    _EMAIL_RE_TEXT,
    _FALSE,
    _INT64_FLOAT_LIMIT,
    _IPV4_RE_TEXT,
    _MAID_RE_TEXT,
    _MAID_TYPES,
    _MAID_ZERO,
    _MULTIPLIERS,
    _NANP_FAST_REGIONS,
    _NUMBER_RE_TEXT,
    _PORT_RE_TEXT,
    _SCHEME_RE_TEXT,
    _SUFFIX_DIGITS,
    _TRUE,
    _USERINFO_RE_TEXT,
    CUSTOM_TEXT_MAX,
    EMAIL_MAX,
    ERROR_VALUE_CHARS,
    INT32_MAX,
    INT64_MAX,
    PHONE_MAX,
    PHONE_SEPARATOR_CHARS,
    POSTAL_RE_TEXT,
    R_BOOLEAN,
    R_COUNTRY,
    R_DATE,
    R_DOMAIN,
    R_EMAIL,
    R_IP,
    R_MAID,
    R_MAID_TYPE,
    R_MAID_ZERO,
    R_NUL,
    R_NUMBER,
    R_PHONE,
    R_POSTAL,
    R_RANGE,
    R_WHOLE,
    country_table,
    normalize_email,
    normalize_ip,
    normalize_phone,
    too_long_reason,
    trim_expr,
    uid2_hash_expr,
)
from audiences.normalize_phones import normalize_phones
from p360.core.domains import DOMAIN_MAX

# --- The batch ----------------------------------------------------------------------------------------
#
# Each field contributes expressions at increasing depths; every depth is one `with_columns`, and later depths
# refer to earlier results by column name. Writing the steps out this way (instead of nesting one big expression)
# makes every regex run once per value: polars does not reliably share sub-expressions inside when/then chains.

ROW = "__row"
ERROR_SCHEMA: dict[str, type[pl.DataType]] = {
    ROW: pl.Int64,
    "column": pl.String,
    "field": pl.String,
    "value": pl.String,
    "reason": pl.String,
}


@dataclass(frozen=True)
class NormalizedBatch:
    """`records`: `__row`, the mapped canonical fields and their derived columns (typed as in fields.FIELDS) and
    `custom` (JSON object text or null), for rows without errors. `errors`: one row per failing value, with
    `__row`, `column` (source header), `field` (canonical field or custom field name), `value` (the raw value,
    at most 200 characters) and `reason`."""

    records: pl.DataFrame
    errors: pl.DataFrame


@dataclass(frozen=True)
class _Fallback:
    """Rows flagged `flag` get `target` = function(`source`) over unique values after the vectorised pass."""

    flag: str
    source: str
    target: str
    function: Callable[[str], str | None]
    # Optional: the same function over a whole Series of (distinct) values at once, when one exists.
    batch: Callable[[pl.Series], pl.Series] | None = None


@dataclass(frozen=True)
class _Coded:
    """A column evaluated on its distinct values and not yet spread to its rows: `result` has one row per distinct
    value (the last one null) with the reason, output and derived columns; `codes` each row's index into it; `raw`
    the column itself. Spread at the end to the rows that need it: the reason as a boolean to every row, the outputs
    to the surviving rows only (gathering strings to every row, then filtering them, was most of the column's cost).
    """

    result: pl.DataFrame
    codes: pl.Series
    raw: pl.Series

    @property
    def columns(self) -> list[str]:
        return [self.raw.name, *self.result.columns]

    def failing(self, reason: str) -> pl.Series:
        return self.result.get_column(reason).is_not_null().gather(self.codes)

    def rows(self, mask: pl.Series, columns: list[str]) -> pl.DataFrame:
        """`columns` on the rows of `mask`."""
        return self.result.select(columns).gather(self.codes.filter(mask))


_Piece = pl.DataFrame | _Coded


class _Plan:
    def __init__(self) -> None:
        self.stages: list[dict[str, pl.Expr]] = []
        self.fallbacks: list[_Fallback] = []
        # Reasons computed only after the fallbacks ran: (reason column, trimmed column, target column, text).
        self.late_reasons: list[tuple[str, str, str, str]] = []

    def add(self, depth: int, name: str, expr: pl.Expr) -> pl.Expr:
        while len(self.stages) <= depth:
            self.stages.append({})
        self.stages[depth][name] = expr
        return pl.col(name)

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        for stage in self.stages:
            frame = frame.with_columns(expr.alias(name) for name, expr in stage.items())
        return frame


def _reason(condition: pl.Expr, text: str) -> Any:  # a when/then that callers may extend with `.when`
    return pl.when(condition).then(pl.lit(text, dtype=pl.String))


def _plan_email(plan: _Plan, p: str, t: pl.Expr, reason: str) -> dict[str, str]:
    # ASCII rows: polars' Unicode to_lowercase equals the SDK's A-Z lowercasing. Rows with any non-ASCII character
    # are rare and go through normalize_email itself.
    low = plan.add(1, f"{p}low", t.str.to_lowercase())
    plan.add(1, f"{p}fb", t.str.len_bytes() != t.str.len_chars())  # a non-ASCII character (cheaper than a regex)
    syntax = plan.add(2, f"{p}syntax", low.str.contains(_EMAIL_RE_TEXT) & (low.str.len_chars() <= EMAIL_MAX))
    gmail = plan.add(2, f"{p}gmail", low.str.ends_with("@gmail.com"))
    # Only gmail rows carry a value into the local-part steps (string operations skip nulls): the local part ends
    # at the first `+` or `@`. A byte cut: rows with non-ASCII characters are replaced by the fallback anyway.
    local = _head_bytes(pl.when(gmail).then(low), low.str.find(r"[+@]")).str.replace_all(".", "", literal=True)
    local = plan.add(3, f"{p}glocal", local)
    valid = syntax & (~gmail | (local.str.len_bytes() > 0))
    normalized = pl.when(valid).then(pl.when(gmail).then(local + "@gmail.com").otherwise(low))
    plan.add(4, f"{p}norm", normalized)
    plan.fallbacks.append(_Fallback(f"{p}fb", f"{p}t", f"{p}norm", normalize_email))
    plan.late_reasons.append((reason, f"{p}t", f"{p}norm", R_EMAIL))
    return {"email": f"{p}t", "email_normalized": f"{p}norm"}


def _plan_phone(plan: _Plan, p: str, t: pl.Expr, reason: str, default_country: str) -> dict[str, str]:
    # Fast path: plain NANP numbers (`(234) 567-8901`, `+1 234.567.8901`, `12345678901` when the default country
    # is US/CA). Everything else (other countries, extensions, letters, junk) goes through normalize_phone.
    separators = list(PHONE_SEPARATOR_CHARS)
    compact = plan.add(1, f"{p}compact", t.str.replace_many(separators, [""] * len(separators)))
    prefix = r"(?:\+1|1)?" if default_country.upper() in _NANP_FAST_REGIONS else r"\+1"
    # A match test (no capture groups: the fast regex engine) and the last ten characters.
    nanp = compact.str.contains(rf"^{prefix}[2-9][0-9]{{2}}[2-9][0-9]{{6}}$")
    national = plan.add(2, f"{p}nat", pl.when(nanp).then(compact.str.slice(-10)))
    fast = plan.add(3, f"{p}e164", pl.when(t.str.len_chars() <= PHONE_MAX).then("+1" + national))
    plan.add(4, f"{p}fb", t.is_not_null() & fast.is_null())
    # The rest: international numbers validated in polars from phonenumbers' metadata, the others one by one.
    plan.fallbacks.append(
        _Fallback(
            f"{p}fb",
            f"{p}t",
            f"{p}e164",
            lambda v: normalize_phone(v, default_country),
            lambda values: normalize_phones(values, default_country),
        )
    )
    plan.late_reasons.append((reason, f"{p}t", f"{p}e164", R_PHONE))
    return {"phone": f"{p}t", "phone_e164": f"{p}e164"}


def _plan_ip(plan: _Plan, p: str, t: pl.Expr, reason: str) -> dict[str, str]:
    plan.add(1, f"{p}ip", pl.when(t.str.contains(_IPV4_RE_TEXT)).then(t))
    plan.add(1, f"{p}fb", t.str.contains(":", literal=True).fill_null(False))
    plan.fallbacks.append(_Fallback(f"{p}fb", f"{p}t", f"{p}ip", normalize_ip))
    plan.late_reasons.append((reason, f"{p}t", f"{p}ip", R_IP))
    return {"ip": f"{p}ip"}


def _plan_lookup(
    plan: _Plan, p: str, t: pl.Expr, reason: str, key: pl.Expr, table: Mapping[str, str], text: str
) -> str:
    value = plan.add(
        2, f"{p}v", plan.add(1, f"{p}key", key).replace_strict(table, default=None, return_dtype=pl.String)
    )
    plan.add(3, reason, _reason(t.is_not_null() & value.is_null(), text))
    return f"{p}v"


def _where_contains(column: pl.Expr, needle: str, step: pl.Expr) -> pl.Expr:
    """`step` on the rows holding the literal `needle` (which every match of the step's regex holds), the column
    unchanged elsewhere. Measured per step (docs/normalize.md): it pays for the userinfo regex, which scans a whole
    value for an `@` that websites rarely hold, and costs more than it saves for the scheme and port regexes."""
    return pl.when(column.str.contains(needle, literal=True)).then(step).otherwise(column)


def _head_bytes(column: pl.Expr, length: pl.Expr) -> pl.Expr:
    """The first `length` bytes (null: all), for a cut at an ASCII character found by `str.find` (a byte offset;
    `str.head` counts characters)."""
    return column.cast(pl.Binary).bin.head(length.fill_null(1 << 30)).cast(pl.String)


def _plan_domain(plan: _Plan, p: str, t: pl.Expr, reason: str) -> dict[str, str]:
    # The steps of `normalize_domain`, each a cheap literal test or byte cut where the regex is not needed.
    lowered = plan.add(1, f"{p}low", t.str.to_lowercase())
    # The scheme and port regexes run on every row: guarding them by a literal test cost more than it saved
    # (when/then evaluates both branches; docs/normalize.md). The userinfo guard pays: `@` is rare in websites.
    host = plan.add(2, f"{p}h1", lowered.str.replace(_SCHEME_RE_TEXT, ""))
    # The path starts at the first of `/?#` (PATH_RE_TEXT): keep what is before it.
    host = plan.add(3, f"{p}h2", _head_bytes(host, host.str.find(r"[/?#]")))
    host = _where_contains(host, "@", host.str.replace(_USERINFO_RE_TEXT, "")).str.strip_prefix("www.")
    host = plan.add(4, f"{p}h3", host)
    host = plan.add(5, f"{p}host2", host.str.replace(_PORT_RE_TEXT, "").str.strip_chars_end("."))
    valid = plan.add(6, f"{p}ok", (host.str.len_chars() <= DOMAIN_MAX) & host.str.contains(_DOMAIN_RE_TEXT))
    plan.add(7, reason, _reason(t.is_not_null() & ~valid, R_DOMAIN))
    return {"domain": f"{p}host2"}


def _plan_number(plan: _Plan, p: str, t: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """Columns (matched, negative, body, shift) at depth 2, the same steps as `_parse_number`."""
    # Plain numbers (`1234`, `12.5`) skip the capture-group regex, the slow part; string operations skip nulls.
    plain = plan.add(1, f"{p}plain", t.str.contains(r"^[0-9]+(?:\.[0-9]+)?$"))
    groups = plan.add(2, f"{p}g", pl.when(~plain).then(t).str.extract_groups(_NUMBER_RE_TEXT))
    field = groups.struct.field
    body = (
        pl.when(plain)
        .then(t)
        .otherwise(
            pl.coalesce(
                field("comma").str.replace_all(",", "", literal=True),
                field("space").str.replace_all(r"[ \u00a0\u202f']", "").str.replace_all(",", ".", literal=True),
                field("dot").str.replace_all(".", "", literal=True).str.replace_all(",", ".", literal=True),
                field("dcomma").str.replace_all(",", ".", literal=True),
                field("plain"),
            )
        )
    )
    body = plan.add(3, f"{p}body", body)
    matched = plan.add(3, f"{p}matched", field("s1").is_null() | field("s2").is_null())
    negative = plan.add(3, f"{p}neg", (field("s1") == "-").fill_null(False) | (field("s2") == "-").fill_null(False))
    shift = field("suffix").str.to_lowercase().replace_strict(_SUFFIX_DIGITS, default=0, return_dtype=pl.Int64)
    shift = plan.add(3, f"{p}shift", shift.fill_null(0))
    return matched & body.is_not_null(), negative, body, shift


def _plan_decimal(plan: _Plan, p: str, t: pl.Expr) -> pl.Expr:
    """A Float64 column (depth 3), null when not a (finite) number."""
    matched, negative, body, shift = _plan_number(plan, p, t)
    value = (pl.when(negative).then(pl.lit("-")).otherwise(pl.lit("")) + body).cast(pl.Float64, strict=False)
    multiplier: Any = pl.when(shift == 0).then(1.0)  # a when/then chain (polars types each link differently)
    for digits, factor in _MULTIPLIERS.items():
        multiplier = multiplier.when(shift == digits).then(factor)
    value = value * multiplier
    return plan.add(4, f"{p}dec", pl.when(matched & value.is_finite()).then(value))


def _plan_integer(plan: _Plan, p: str, t: pl.Expr, reason: str, maximum: int) -> str:
    matched, negative, body, shift = _plan_number(plan, p, t)
    parts = plan.add(4, f"{p}parts", body.str.split_exact(".", 1))
    whole = parts.struct.field("field_0").fill_null("")
    fraction = plan.add(5, f"{p}frac", parts.struct.field("field_1").fill_null(""))
    padded = fraction + "000000000"
    shifted_whole: Any = pl.when(shift == 0).then(whole)  # when/then chains, extended below
    rest: Any = pl.when(shift == 0).then(fraction)
    for digits in _MULTIPLIERS:
        shifted_whole = shifted_whole.when(shift == digits).then(whole + padded.str.slice(0, digits))
        rest = rest.when(shift == digits).then(padded.str.slice(digits))
    shifted_whole = plan.add(6, f"{p}whole", shifted_whole)
    is_whole = plan.add(6, f"{p}is_whole", rest.str.contains(r"^0*$"))
    digits_text = pl.when(shifted_whole == "").then(pl.lit("0")).otherwise(shifted_whole)
    sign = pl.when(negative).then(pl.lit("-")).otherwise(pl.lit(""))
    integer = plan.add(7, f"{p}int", pl.when(matched).then(sign + digits_text).cast(pl.Int64, strict=False))
    in_range = integer.is_between(-maximum, maximum).fill_null(False)
    text = (
        pl.when(t.is_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(~matched)
        .then(pl.lit(R_NUMBER))
        .when(~is_whole)
        .then(pl.lit(R_WHOLE))
        .when(~in_range)
        .then(pl.lit(R_RANGE))
    )
    plan.add(8, reason, text)
    return f"{p}int"


def _plan_rounded(plan: _Plan, p: str, t: pl.Expr, reason: str) -> str:
    value = _plan_decimal(plan, p, t)
    rounded = pl.when(value.abs() < _INT64_FLOAT_LIMIT).then(value.round(0, mode="half_to_even")).cast(pl.Int64)
    rounded = plan.add(5, f"{p}rounded", rounded)
    text = pl.when(t.is_null()).then(pl.lit(None, dtype=pl.String)).when(value.is_null()).then(pl.lit(R_NUMBER))
    plan.add(6, reason, text.when(rounded.is_null()).then(pl.lit(R_RANGE)))
    return f"{p}rounded"


def _plan_text(plan: _Plan, p: str, t: pl.Expr, reason: str, limit: int) -> str:
    text = _reason(t.str.contains("\x00", literal=True), R_NUL).when(t.str.len_chars() > limit)
    plan.add(1, reason, text.then(pl.lit(too_long_reason(limit))))
    return f"{p}t"


def _plan_field(plan: _Plan, field: str, p: str, reason: str, default_country: str) -> dict[str, str]:
    """Plan one canonical field from the trimmed column `{p}t`; returns {output column: plan column}."""
    t = pl.col(f"{p}t")
    if field == "email":
        return _plan_email(plan, p, t, reason)
    if field == "phone":
        return _plan_phone(plan, p, t, reason, default_country)
    if field == "ip":
        return _plan_ip(plan, p, t, reason)
    if field == "domain":
        return _plan_domain(plan, p, t, reason)
    if field == "country":
        key = t.str.to_lowercase().str.replace_all("&", "and", literal=True).str.replace_all(_COUNTRY_KEY_STRIP, "")
        return {field: _plan_lookup(plan, p, t, reason, key, country_table(), R_COUNTRY)}
    if field == "maid_type":
        return {field: _plan_lookup(plan, p, t, reason, t.str.to_lowercase(), _MAID_TYPES, R_MAID_TYPE)}
    if field == "maid":
        parts = plan.add(1, f"{p}parts", t.str.to_lowercase().str.extract_groups(_MAID_RE_TEXT))
        joined = plan.add(
            2, f"{p}maid", pl.concat_str([parts.struct.field(str(i)) for i in range(1, 6)], separator="-")
        )
        text = _reason(t.is_not_null() & joined.is_null(), R_MAID).when(joined == _MAID_ZERO).then(pl.lit(R_MAID_ZERO))
        plan.add(3, reason, text)
        return {field: f"{p}maid"}
    if field == "postal_code":
        upper = plan.add(1, f"{p}upper", t.str.to_uppercase())
        valid = upper.str.contains(POSTAL_RE_TEXT) & (upper.str.len_chars() <= 20)
        plan.add(2, reason, _reason(t.is_not_null() & ~valid, R_POSTAL))
        return {field: f"{p}upper"}
    if field == "employee_count":
        return {field: _plan_integer(plan, p, t, reason, INT32_MAX)}
    if field == "revenue":
        return {field: _plan_rounded(plan, p, t, reason)}
    return {field: _plan_text(plan, p, t, reason, FIELDS_BY_NAME[field].max_length or CUSTOM_TEXT_MAX)}


def _plan_custom(plan: _Plan, type_name: str, p: str, reason: str) -> str:
    """Plan one custom column from `{p}t`; returns the typed value column."""
    t = pl.col(f"{p}t")
    if type_name == "integer":
        return _plan_integer(plan, p, t, reason, INT64_MAX)
    if type_name == "decimal":
        value = _plan_decimal(plan, p, t)
        plan.add(5, reason, _reason(t.is_not_null() & value.is_null(), R_NUMBER))
        return f"{p}dec"
    if type_name == "boolean":
        lowered = plan.add(1, f"{p}low", t.str.to_lowercase())
        flag = plan.add(2, f"{p}bool", pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False))
        plan.add(3, reason, _reason(t.is_not_null() & flag.is_null(), R_BOOLEAN))
        return f"{p}bool"
    if type_name == "date":
        shaped = pl.when(t.str.contains(_DATE_RE_TEXT)).then(t.str.replace_all("/", "-", literal=True))
        day = plan.add(1, f"{p}date", shaped.str.strptime(pl.Date, "%Y-%m-%d", strict=False))
        plan.add(2, reason, _reason(t.is_not_null() & day.is_null(), R_DATE))
        return f"{p}date"
    if type_name == "text":
        return _plan_text(plan, p, t, reason, CUSTOM_TEXT_MAX)
    raise ValueError(f"unknown custom type {type_name!r} (one of {', '.join(CUSTOM_TYPES)})")


def custom_values(values: pl.Series, type_name: str) -> pl.DataFrame:
    """The vectorised twin of `custom_value` for one column: a frame with `value` (typed) and `reason`."""
    plan = _Plan()
    plan.add(0, "__c_t", trim_expr(pl.col("v")))
    column = _plan_custom(plan, type_name, "__c_", "__c_reason")
    frame = plan.apply(pl.DataFrame({"v": values.cast(pl.String)}).lazy()).collect()
    return frame.select(pl.col(column).alias("value"), pl.col("__c_reason").cast(pl.String).alias("reason"))


def _json_fragment(key: str, value: pl.Expr, type_name: str) -> pl.Expr:
    """`"key":<json value>`, or null for a null value so that it is left out of the object."""
    if type_name in ("text", "decimal"):
        # struct.json_encode escapes strings and prints floats as JSON requires; keep the value part of `{"k":…}`.
        encoded = pl.struct(value.alias("k")).struct.json_encode()
        # (`str.slice` counts characters: a byte count kept the closing brace of values with non-ASCII text)
        encoded = encoded.str.slice(5, encoded.str.len_chars() - 6)
    elif type_name == "date":
        encoded = '"' + value.dt.to_string("%Y-%m-%d") + '"'
    elif type_name == "boolean":
        encoded = pl.when(value).then(pl.lit("true")).otherwise(pl.lit("false"))
    else:
        encoded = value.cast(pl.String)
    return pl.when(value.is_not_null()).then(pl.lit(json.dumps(key) + ":") + encoded)


# A character JSON writes escaped (or that the fast path leaves to the encoder): not printable ASCII, `"` or a backslash.
_JSON_ESCAPED = r"[^\x20\x21\x23-\x5b\x5d-\x7e]"


def _plain_json_text(values: pl.Series) -> bool:
    """Whether every value is printable ASCII without `"` or `\\`, so that its JSON string is the value in quotes."""
    return not values.str.contains(_JSON_ESCAPED).any()


def _plain_text_fragment(key: str, value: pl.Expr) -> pl.Expr:
    """`_json_fragment` of a text column whose values need no escaping (`_plain_json_text`): the value between
    quotes, without the struct and its JSON encoding (0.26 -> 0.11 CPU-s per 1M values with the braces; a null
    value stays null, so it is left out of the object as before)."""
    return pl.concat_str([pl.lit(json.dumps(key) + ':"'), value, pl.lit('"')])


def _check_arguments(df: pl.DataFrame, mapping: Mapping[str, str], custom_types: Mapping[str, str]) -> None:
    if ROW not in df.columns:
        raise ValueError(f"the batch has no {ROW} column")
    seen: dict[str, str] = {}
    for header, field in mapping.items():
        if header not in df.columns:
            raise ValueError(f"mapped column {header!r} is not in the batch")
        spec = FIELDS_BY_NAME.get(field)
        if spec is None or spec.derived:
            raise ValueError(f"{field!r} is not a canonical field")
        if field in seen:
            raise ValueError(f"{field!r} is mapped from both {seen[field]!r} and {header!r}")
        seen[field] = header
    for header, type_name in custom_types.items():
        if header not in df.columns:
            raise ValueError(f"custom column {header!r} is not in the batch")
        if header in mapping:
            raise ValueError(f"column {header!r} is both mapped and custom")
        if type_name not in CUSTOM_TYPES:
            raise ValueError(f"unknown custom type {type_name!r} for {header!r}")


def normalize_batch(
    df: pl.DataFrame,
    mapping: Mapping[str, str],
    *,
    custom_types: Mapping[str, str],
    default_country: str = "US",
    custom_names: Mapping[str, str] | None = None,
    hashes: bool = True,
) -> NormalizedBatch:
    """Validate and normalise one batch.

    `df`: all-String columns named by (unique) source header plus an Int64 `__row`. `mapping`: source header ->
    canonical field for the mapped columns. `custom_types`: source header -> custom type (`fields.CUSTOM_TYPES`)
    for the columns kept as custom fields; their JSON keys are `custom_names[header]`, by default
    `fields.custom_field_names(custom_types)`. Columns in neither are ignored. Empty and whitespace-only values
    are null, never errors; a row with any error is left out of `records` and reported in `errors`. Without
    `hashes` the UID2 hashes (`email_sha256`, `phone_sha256`) are neither computed nor returned: the import does
    not store them (issue 17: every reader derives them from `email_normalized` / `phone_e164`).
    """
    _check_arguments(df, mapping, custom_types)
    names = dict(custom_names) if custom_names is not None else custom_field_names(custom_types)
    normalise = partial(
        _normalize_rows, mapping=mapping, custom_types=custom_types, default_country=default_country, hashes=hashes
    )
    if df.height < SPLIT_MIN_ROWS:
        records, parts = normalise(df, names=names, workers=2)
        return NormalizedBatch(records=records, errors=_sorted_errors(parts))
    # Big batches: each half of the rows through every column on its own thread (columns one after another).
    # Two halves are two equal shares of the same work, so both cores stay busy to the end, including the
    # SHA-256 and the records' assembly that a column-by-column split left to one thread (docs/normalize.md).
    middle = df.height // 2
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="normalize") as pool:
        halves = list(pool.map(partial(normalise, names=names, workers=1), [df.slice(0, middle), df.slice(middle)]))
    (first, first_parts), (second, second_parts) = halves
    # Errors column by column, each column's rows in batch order: what one pass over the whole batch gives.
    parts = [pl.concat([a, b], how="vertical") for a, b in zip(first_parts, second_parts, strict=True)]
    return NormalizedBatch(records=pl.concat([first, second], how="vertical"), errors=_sorted_errors(parts))


# Batches of at least this many rows are normalised as two halves on two threads. Each half repeats the per-batch
# work (plans, categorical codes, the fallbacks' distinct values): +2.5 % CPU at 1M rows, +20 % at 100K (the
# import's batches, which keep the column split).
SPLIT_MIN_ROWS = 500_000


def _normalize_rows(
    df: pl.DataFrame,
    *,
    mapping: Mapping[str, str],
    custom_types: Mapping[str, str],
    default_country: str,
    names: Mapping[str, str],
    workers: int,
    hashes: bool = True,
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """(records, each column's error rows in batch order) of `df`, its columns `workers` at a time."""
    outputs: dict[str, str] = {}  # record column -> plan column
    sources: list[tuple[str, str, str]] = []  # (header, field label for errors, reason column)
    hashed_on_distinct: dict[str, str] = {}  # hash field -> column already computed on distinct values
    # Every column is planned on its own (`__m0_raw`, ...: no source header can collide with plan columns), so a
    # column whose values repeat is normalised once per distinct value and joined back to its rows.
    jobs: list[tuple[str, dict[str, pl.Expr], Callable[[], _Piece]]] = []
    for index, (header, field) in enumerate(mapping.items()):
        p, reason = f"__m{index}_", f"__m{index}_reason"
        plan = _Plan()
        plan.add(0, f"{p}t", trim_expr(pl.col(f"{p}raw")))
        planned = _plan_field(plan, field, p, reason, default_country)
        outputs.update(planned)
        hashed: dict[str, pl.Expr] = {
            f"{p}{_HASH_OF[base]}": pl.when(pl.col(reason).is_null()).then(uid2_hash_expr(pl.col(column)))
            for base, column in planned.items()
            if base in _HASH_OF and hashes
        }
        jobs.append(
            (p, hashed, partial(_evaluate, plan, p, reason, df.get_column(header), [*planned.values()], hashed))
        )
        sources.append((header, field, reason))
    custom_columns: list[tuple[str, str, str]] = []  # (json key, type, value column)
    custom_jobs: list[tuple[str, dict[str, pl.Expr], Callable[[], _Piece]]] = []
    for index, (header, type_name) in enumerate(custom_types.items()):
        p, reason = f"__c{index}_", f"__c{index}_reason"
        plan = _Plan()
        plan.add(0, f"{p}t", trim_expr(pl.col(f"{p}raw")))
        column = _plan_custom(plan, type_name, p, reason)
        fragment = {f"{p}json": _json_fragment(names[header], pl.col(column), type_name)}
        custom_jobs.append(
            (p, fragment, partial(_evaluate, plan, p, reason, df.get_column(header), [column], fragment))
        )
        custom_columns.append((names[header], type_name, column))
        sources.append((header, names[header], reason))
    # The columns are independent: two at a time, so one column's Python fallbacks (phonenumbers) and another's
    # polars work share the two cores (polars releases the GIL). The costliest columns start first, so that no
    # heavy column is left running alone on one core at the end (the results keep the planned order).
    everything = [*jobs, *custom_jobs]
    fields = [*mapping.values(), *(f"custom.{t}" for t in custom_types.values())]
    order = sorted(range(len(everything)), key=lambda i: -_COST.get(fields[i], 1))
    if workers == 1:
        evaluated = [job() for _, _, job in everything]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="normalize-column") as pool:
            futures = {i: pool.submit(everything[i][2]) for i in order}
            evaluated = [futures[i].result() for i in range(len(everything))]
    for (p, hashed, _), piece in zip(jobs, evaluated, strict=False):
        hashed_on_distinct.update({name.removeprefix(p): name for name in hashed if name in piece.columns})
    fragments: list[pl.Expr] = []  # each custom column's `"key":value` JSON fragment
    for (p, fragment, _), piece, (key, type_name, column) in zip(
        custom_jobs, evaluated[len(jobs) :], custom_columns, strict=True
    ):
        if f"{p}json" in piece.columns:  # computed on the distinct values already
            fragments.append(pl.col(f"{p}json"))
        elif type_name == "text" and isinstance(piece, pl.DataFrame) and _plain_json_text(piece.get_column(column)):
            fragments.append(_plain_text_fragment(key, pl.col(column)))
        else:
            fragments.append(fragment[f"{p}json"])

    rows = df.get_column(ROW)
    failing = [_failing(piece, reason) for piece, (_, _, reason) in zip(evaluated, sources, strict=True)]
    errors = [
        _piece_errors(piece, rows, mask, header, field, reason)
        for piece, mask, (header, field, reason) in zip(evaluated, failing, sources, strict=True)
    ]
    ok = ~functools.reduce(operator.or_, failing) if failing else pl.repeat(True, df.height, eager=True)
    survivors = [rows.filter(ok).to_frame()]
    for piece, (_, _, reason) in zip(evaluated, sources, strict=True):
        columns = [c for c in piece.columns if c not in (reason, piece.columns[0])]  # not the reason nor the raw
        survivors.append(piece.rows(ok, columns) if isinstance(piece, _Coded) else piece.select(columns).filter(ok))
    good = pl.concat(survivors, how="horizontal").lazy()
    selected: list[pl.Expr] = [pl.col(ROW)]
    for spec in FIELDS:
        source = outputs.get(spec.name)
        if spec.name in hashed_on_distinct:
            selected.append(pl.col(hashed_on_distinct[spec.name]).alias(spec.name))
        elif spec.name in ("email_sha256", "phone_sha256"):
            if not hashes:
                continue
            base = outputs.get(
                spec.name.replace("_sha256", "_normalized" if spec.name.startswith("email") else "_e164")
            )
            if base is not None:
                selected.append(uid2_hash_expr(pl.col(base)).alias(spec.name))
        elif source is not None:
            selected.append(pl.col(source).cast(spec.dtype).alias(spec.name))
    if custom_columns:
        joined = pl.concat_str(fragments, separator=",", ignore_nulls=True)
        # One concatenation with the braces, on rows with any fragment (fragments are never empty strings): a
        # third cheaper than measuring the joined text and adding the braces in two more passes.
        braced = pl.concat_str([pl.lit("{"), joined, pl.lit("}")])
        present = pl.any_horizontal([fragment.is_not_null() for fragment in fragments])
        selected.append(pl.when(present).then(braced).alias("custom"))
    else:
        selected.append(pl.lit(None, dtype=pl.String).alias("custom"))
    return good.select(selected).collect(), errors


_HASH_OF = {"email_normalized": "email_sha256", "phone_e164": "phone_sha256"}
# Relative cost of a column per row (a profile of a dirty 1M-row batch); unlisted fields and custom columns: 1.
_COST = {"phone": 8, "domain": 6, "email": 5}
# A column is normalised per distinct value when its values repeat at least this much (HyperLogLog estimate).
DISTINCT_SHARE = 0.5
DISTINCT_MIN_ROWS = 1_000


def _evaluate(
    plan: _Plan, p: str, reason: str, values: pl.Series, outputs: list[str], derived: Mapping[str, pl.Expr]
) -> _Piece:
    """One column through its plan: `{p}raw`, `reason` and the output columns, one row per value in `values`; for
    a column of few distinct values, a `_Coded` (the results per distinct value and each row's code) instead.

    Repeating columns (countries, revenue bands, names, phones of a CRM export) are evaluated on their distinct
    values and joined back, so regexes, fallbacks and SHA-256 run once per value, not once per row. On that path
    the `derived` columns (SHA-256 hashes, JSON fragments) are computed here too, on the distinct values; otherwise
    they are left out and the caller computes them on the rows that survive validation.
    """
    raw = f"{p}raw"
    height = values.len()
    coded = _few_distinct(values)
    if coded is not None:
        return _evaluate_coded(plan, p, reason, values, outputs, derived, *coded)
    distinct = height >= DISTINCT_MIN_ROWS and int(values.approx_n_unique()) <= DISTINCT_SHARE * height  # type: ignore[arg-type]
    frame = _planned(plan, raw, reason, values.unique() if distinct else values)
    keep = [raw, reason, *dict.fromkeys(outputs)]
    if not distinct:
        return frame.select(keep)
    result = frame.select(*keep, *(expr.alias(name) for name, expr in derived.items()))
    rows = pl.DataFrame({raw: values}, schema={raw: pl.String})
    return rows.join(result, on=raw, how="left", nulls_equal=True, maintain_order="left")


def _planned(plan: _Plan, raw: str, reason: str, source: pl.Series) -> pl.DataFrame:
    """The plan and its scalar fallbacks over `source` (as `raw`), with a `reason` column whatever the field."""
    frame = plan.apply(pl.DataFrame({raw: source}, schema={raw: pl.String}).lazy()).collect()
    frame = _run_fallbacks(frame, plan)
    if reason not in frame.columns:  # fields without any possible error (none today; keeps the shape uniform)
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(reason))
    return frame


# A column whose strided sample has at most this share of distinct values is coded by a categorical cast.
FEW_SAMPLE, FEW_SHARE = 2_048, 0.05


def _few_distinct(values: pl.Series) -> tuple[pl.Series, pl.Series] | None:
    """(distinct values, then a null; each row's index into them) for a column with few distinct values (countries,
    bands, names), else None.

    A strided sample decides (no HyperLogLog pass over the column), and a categorical cast with categories of its
    own numbers the distinct values 0..n-1 in one pass: cheaper than `unique` plus a join back by string.
    """
    height = values.len()
    if height < DISTINCT_MIN_ROWS:
        return None
    sample = values.gather_every(max(1, height // FEW_SAMPLE))
    if sample.n_unique() > FEW_SHARE * sample.len():
        return None
    categories = pl.Categories.random()
    categorical = values.cast(pl.Categorical(categories))  # holds `categories` alive until they are read
    distinct = categories.to_series()
    if distinct.null_count() or distinct.len() > DISTINCT_SHARE * height:
        return None  # (ids reserved but unassigned, or the sample misled): the general path
    codes = categorical.to_physical().fill_null(distinct.len())  # nulls -> the appended null value
    return pl.concat([distinct, pl.Series([None], dtype=pl.String)]), codes


def _evaluate_coded(
    plan: _Plan,
    p: str,
    reason: str,
    values: pl.Series,
    outputs: list[str],
    derived: Mapping[str, pl.Expr],
    distinct: pl.Series,
    codes: pl.Series,
) -> _Coded:
    """`_evaluate` on the distinct values, left for the caller to spread to the rows by the rows' codes."""
    raw = f"{p}raw"
    frame = _planned(plan, raw, reason, distinct)
    keep = [c for c in dict.fromkeys([reason, *outputs]) if c != raw]
    result = frame.select(*keep, *(expr.alias(name) for name, expr in derived.items()))
    return _Coded(result, codes, values.alias(raw))


def _run_fallbacks(frame: pl.DataFrame, plan: _Plan) -> pl.DataFrame:
    """Values the vectorised pass could not place go through the scalar function, once per unique value; then
    the reasons that depend on them are set."""
    updates: list[pl.Series] = []
    for fallback in plan.fallbacks:
        rows = frame.get_column(fallback.flag).fill_null(False).arg_true()
        if rows.len() == 0:
            continue
        sources = frame.get_column(fallback.source).gather(rows)
        residual = sources.unique().drop_nulls()
        if residual.len() == 0:
            continue
        if fallback.batch is not None:
            resolved = fallback.batch(residual)
        else:
            resolved = pl.Series([fallback.function(value) for value in residual.to_list()], dtype=pl.String)
        # Written into the flagged rows only: a lookup over the whole column (when/then) cost twice as much.
        target = frame.get_column(fallback.target).cast(pl.String).clone()
        target.scatter(rows, sources.replace_strict(residual, resolved, default=None, return_dtype=pl.String))
        updates.append(target)
    if updates:
        frame = frame.with_columns(updates)
    late = [
        _reason(pl.col(source).is_not_null() & pl.col(target).is_null(), text).alias(reason)
        for reason, source, target, text in plan.late_reasons
    ]
    return frame.with_columns(late) if late else frame


def _failing(piece: _Piece, reason: str) -> pl.Series:
    """Whether each row's value fails (a Boolean Series over the batch's rows)."""
    if isinstance(piece, _Coded):
        return piece.failing(reason)
    return piece.get_column(reason).is_not_null()


def _piece_errors(
    piece: _Piece, rows: pl.Series, failing: pl.Series, header: str, field: str, reason: str
) -> pl.DataFrame:
    """One column's failing values (in row order), with the raw value from the column."""
    if isinstance(piece, _Coded):
        raw, reasons = piece.raw.filter(failing), piece.rows(failing, [reason]).get_column(reason)
    else:
        raw, reasons = piece.get_column(piece.columns[0]).filter(failing), piece.get_column(reason).filter(failing)
    return pl.DataFrame({ROW: rows.filter(failing), "value": raw, "reason": reasons}).select(
        pl.col(ROW),
        pl.lit(header, dtype=pl.String).alias("column"),
        pl.lit(field, dtype=pl.String).alias("field"),
        pl.col("value").str.slice(0, ERROR_VALUE_CHARS),
        pl.col("reason").cast(pl.String),
    )


def _sorted_errors(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """One row per failing value: by row, then (a stable sort) in column order."""
    if not parts:
        return pl.DataFrame(schema=ERROR_SCHEMA)
    return pl.concat(parts, how="vertical").sort(ROW, maintain_order=True)
