"""`normalize_phone` over a whole column for international numbers (`+44 20 7946 0958`), from phonenumbers' metadata.

The import's NANP fast path (normalize_batch) places plain US/Canadian numbers; everything else used to go through
`phonenumbers.parse` + `is_valid_number` one distinct value at a time (about 40 us each). For a number written as
`+`, a country code and digits with only the separators space ( ) . - /, what those two calls do reduces to:

* the country code is the first 1, 2 or 3 digits that are a known calling code;
* the national significant number (NSN) is the rest, unless the country's national prefix for parsing matches at
  its start (`+44 (0) 20 ...`): then phonenumbers may strip it, and such values keep the scalar path;
* the region is the code's only region, or for shared codes (44: GB, GG, IM, JE) the first whose leading-digits
  pattern matches the NSN's start, or (without one) whose number types accept it;
* valid when the NSN fully matches the region's general pattern and one type's pattern, each after its possible
  lengths (phonenumbers' `_number_type_helper` != UNKNOWN).

Those checks run here as polars regexes built from the same metadata, once per country code present. Anything
outside that shape (national formats, extensions, letters, `00` prefixes, country code 1, a code whose patterns
Rust's regex engine cannot compile) goes to `normalize_phone` itself. A property test holds the two to agree.
"""

from __future__ import annotations

import functools
from typing import Any

import polars as pl
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
    PhoneMetadata,
    country_code_for_valid_region,
    region_code_for_country_code,
)

from audiences.normalize import normalize_phone

# A leading `+` and only digits and the separators phonenumbers drops and accepts as punctuation (a tab is not
# one: `parse` rejects it). Letters, `#`, `,`, `;` and `~` could start an extension, so they keep the scalar path.
_SHAPE = r"^\+[0-9 ().\-/]*$"
_SEPARATORS = r"[ ().\-/]"
_CODES = frozenset(COUNTRY_CODE_TO_REGION_CODE)
_NANP = 1
_NSN_MIN, _NSN_MAX = 2, 17  # phonenumbers' _MIN_LENGTH_FOR_NSN and _MAX_LENGTH_FOR_NSN
_E164_DIGITS_MIN, _E164_DIGITS_MAX = 10, 15  # UID2 (normalize_phone)

_NSN, _LEN = pl.col("nsn"), pl.col("nsn_len")


def _compiles(pattern: str) -> bool:
    """Whether polars (Rust's regex) accepts the pattern; metadata written for Java/Python may use syntax it lacks."""
    try:
        pl.select(pl.lit("0").str.contains(pattern))
    except pl.exceptions.PolarsError:
        return False
    return True


class _Unsupported(Exception):
    """A metadata pattern Rust's regex engine cannot compile: the country code keeps the scalar path."""


def _full(pattern: str) -> pl.Expr:
    text = f"^(?:{pattern})$"
    if not _compiles(text):
        raise _Unsupported(pattern)
    return _NSN.str.contains(text)


def _prefix(pattern: str) -> pl.Expr:
    """Python's `re.match` (anchored at the start only)."""
    text = f"^(?:{pattern})"
    if not _compiles(text):
        raise _Unsupported(pattern)
    return _NSN.str.contains(text)


def _desc(desc: Any) -> pl.Expr:
    """phonenumbers' `_is_number_matching_desc`: the possible lengths, then the full pattern."""
    if desc is None or not desc.national_number_pattern:
        return pl.lit(False)
    matches = _full(desc.national_number_pattern)
    lengths = list(desc.possible_length)
    return _LEN.is_in(lengths) & matches if lengths else matches


def _type_known(metadata: Any) -> pl.Expr:
    """phonenumbers' `_number_type_helper(nsn, metadata) != UNKNOWN`."""
    types = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
    ]
    if not metadata.same_mobile_and_fixed_line_pattern:  # otherwise the helper never looks at `mobile`
        types.append(metadata.mobile)
    return _desc(metadata.general_desc) & pl.any_horizontal([_desc(desc) for desc in types])


def _valid_for_region(code: int, region: str) -> pl.Expr:
    """phonenumbers' `is_valid_number_for_region`."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region.upper())
    if metadata is None or (region != REGION_CODE_FOR_NON_GEO_ENTITY and code != country_code_for_valid_region(region)):
        return pl.lit(False)
    return _type_known(metadata)


@functools.cache
def _rules(code: int) -> tuple[pl.Expr, pl.Expr] | None:
    """(national prefix matches at the NSN's start, valid) over columns `nsn` and `nsn_len`; None when the code's
    metadata needs a regex feature polars lacks."""
    try:
        main = PhoneMetadata.metadata_for_region_or_calling_code(code, region_code_for_country_code(code))
        prefix = main.national_prefix_for_parsing if main is not None else None
        strips = _prefix(prefix) if prefix else pl.lit(False)
        regions = COUNTRY_CODE_TO_REGION_CODE[code]
        if len(regions) == 1:
            return strips, _valid_for_region(code, regions[0])
        # phonenumbers' `_region_code_for_number_from_list`, then validity for the region it picks.
        chain: Any = None
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
            if metadata is None:
                continue
            picked = _prefix(metadata.leading_digits) if metadata.leading_digits is not None else _type_known(metadata)
            valid = _valid_for_region(code, region)
            chain = pl.when(picked).then(valid) if chain is None else chain.when(picked).then(valid)
        return strips, (chain.otherwise(False) if chain is not None else pl.lit(False))
    except _Unsupported:
        return None


def normalize_phones(values: pl.Series, default_country: str = "US") -> pl.Series:
    """`normalize_phone(value, default_country)` of every value (a String Series), as a String Series.

    International numbers of the plain shape are validated in polars, per country code present; the rest go
    through `normalize_phone` one by one (callers pass distinct values).
    """
    digits = pl.when(pl.col("v").str.contains(_SHAPE)).then(pl.col("v").str.replace_all(_SEPARATORS, "").str.slice(1))
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String}).with_row_index("i").with_columns(digits.alias("d"))
    # phonenumbers' `_extract_country_code`: no leading 0, more than two digits, the shortest known prefix.
    d = pl.col("d")
    heads = [d.str.slice(0, size).cast(pl.Int32, strict=False) for size in (1, 2, 3)]
    code: Any = pl.when(heads[0].is_in(_CODES)).then(heads[0])
    for head in heads[1:]:
        code = code.when(head.is_in(_CODES)).then(head)
    usable = (d.str.len_bytes() > _NSN_MIN) & ~d.str.starts_with("0")
    frame = frame.with_columns(pl.when(usable).then(code).alias("cc"))
    nsn = d.str.slice(pl.col("cc").cast(pl.String).str.len_bytes())
    frame = frame.with_columns(nsn.alias("nsn")).with_columns(pl.col("nsn").str.len_bytes().alias("nsn_len"))
    in_range = pl.col("nsn_len").is_between(_NSN_MIN, _NSN_MAX)
    candidates = frame.filter(pl.col("cc").is_not_null() & (pl.col("cc") != _NANP) & in_range)

    placed: list[pl.DataFrame] = []
    for (country_code,), part in candidates.partition_by("cc", as_dict=True).items():
        rules = _rules(int(country_code))  # type: ignore[arg-type]
        if rules is None:
            continue
        strips, valid = rules
        e164_digits = pl.col("d").str.len_bytes().is_between(_E164_DIGITS_MIN, _E164_DIGITS_MAX)
        e164 = pl.when(valid & e164_digits).then("+" + pl.col("d"))
        placed.append(part.filter(~strips).select("i", e164.alias("e164")))
    vector = (
        pl.concat(placed, how="vertical")
        if placed
        else pl.DataFrame(schema={"i": pl.get_index_type(), "e164": pl.String})
    )
    rest = frame.join(vector, on="i", how="anti").select("i", "v")
    scalar = pl.DataFrame(
        {
            "i": rest.get_column("i"),
            "e164": [normalize_phone(value, default_country) for value in rest.get_column("v").to_list()],
        },
        schema={"i": pl.get_index_type(), "e164": pl.String},
    )
    combined = pl.concat([vector, scalar], how="vertical").sort("i")
    return combined.get_column("e164").alias(values.name)
