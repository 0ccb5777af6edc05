"""The canonical audience field catalogue (data), header -> field mapping proposals, custom field naming and typing.

Pure functions over plain values and polars frames: no models, no I/O. The import pipeline, the mapping preview,
the builder's field catalogue and the record model all read `FIELDS` so a field is described in one place.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl

# Field kinds (what the builder can do with them): free text, an identifier matched exactly, a number, a category
# from a short closed list, a hash.
TEXT = "text"
IDENTIFIER = "identifier"
NUMBER = "number"
CATEGORY = "category"
HASH = "hash"

# Custom field types (inferred per file, see `infer_custom_types`).
CUSTOM_TYPES = ("integer", "decimal", "boolean", "date", "text")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    dtype: type[pl.DataType]
    pg_type: str
    kind: str
    derived: bool = False
    max_length: int | None = None  # for text values; longer values are quarantined
    synonyms: tuple[str, ...] = ()
    description: str = ""
    choices: tuple[str, ...] = ()


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "email", "Email", pl.String, "text", IDENTIFIER, max_length=254,
        synonyms=("email", "e-mail", "email address", "e-mail address", "mail", "email addr", "emailaddr", "work email",
                  "business email", "personal email", "primary email", "contact email", "email id", "emails"),
        description="Email address as given (trimmed); its UID2 form is email_normalized.",
    ),
    FieldSpec(
        "phone", "Phone", pl.String, "text", IDENTIFIER, max_length=64,
        synonyms=("phone", "phone number", "phone no", "telephone", "telephone number", "tel", "mobile",
                  "mobile phone", "mobile number", "cell", "cell phone", "cellphone", "work phone", "direct phone",
                  "business phone", "primary phone", "contact number", "msisdn", "phone num"),
        description="Phone number as given (trimmed); its E.164 form is phone_e164.",
    ),
    FieldSpec(
        "first_name", "First name", pl.String, "text", TEXT, max_length=200,
        synonyms=("first name", "first", "firstname", "fname", "given name", "forename", "first nm"),
    ),
    FieldSpec(
        "last_name", "Last name", pl.String, "text", TEXT, max_length=200,
        synonyms=("last name", "last", "lastname", "lname", "surname", "family name", "last nm"),
    ),
    FieldSpec(
        "job_title", "Job title", pl.String, "text", TEXT, max_length=300,
        synonyms=("job title", "title", "jobtitle", "position", "role", "job role", "designation", "job"),
    ),
    FieldSpec(
        "company_name", "Company", pl.String, "text", TEXT, max_length=300,
        synonyms=("company", "company name", "account", "account name", "organization", "organisation",
                  "organization name", "organisation name", "employer", "business name", "firm", "org"),
    ),
    FieldSpec(
        "domain", "Company domain", pl.String, "text", IDENTIFIER, max_length=253,
        synonyms=("domain", "company domain", "website", "web site", "company website", "url", "web", "site",
                  "homepage", "web address", "website url", "company url", "domain name", "email domain"),
        description="Lowercase host name without scheme, www. or path.",
    ),
    FieldSpec(
        "industry", "Industry", pl.String, "text", CATEGORY, max_length=200,
        synonyms=("industry", "sector", "vertical", "industry name", "industry sector"),
    ),
    FieldSpec(
        "revenue", "Annual revenue", pl.Int64, "bigint", NUMBER,
        synonyms=("revenue", "rev", "annual revenue", "company revenue", "revenue usd", "annual revenue usd", "sales",
                  "annual sales", "turnover", "revenue range"),
        description="Whole currency units, rounded half to even.",
    ),
    FieldSpec(
        "employee_count", "Employees", pl.Int32, "integer", NUMBER,
        synonyms=("employees", "employee count", "number of employees", "no of employees", "num employees",
                  "of employees", "headcount", "head count", "staff", "company size", "employee size",
                  "employees count", "nb employees", "size"),
    ),
    FieldSpec(
        "country", "Country", pl.String, "char(2)", CATEGORY, max_length=2,
        synonyms=("country", "country code", "country name", "nation", "countrycode", "iso country"),
        description="ISO 3166-1 alpha-2 code.",
    ),
    FieldSpec(
        "region", "Region / state", pl.String, "text", CATEGORY, max_length=200,
        synonyms=("region", "state", "province", "state province", "state or province", "county", "territory",
                  "state region", "st"),
    ),
    FieldSpec(
        "city", "City", pl.String, "text", TEXT, max_length=200,
        synonyms=("city", "town", "locality", "city name", "municipality"),
    ),
    FieldSpec(
        "postal_code", "Postal code", pl.String, "text", TEXT, max_length=20,
        synonyms=("postal code", "postcode", "post code", "zip", "zip code", "zipcode", "postal", "zip postal code",
                  "zip postal", "plz", "pin code"),
    ),
    FieldSpec(
        "maid", "Mobile advertising ID", pl.String, "uuid", IDENTIFIER, max_length=36,
        synonyms=("maid", "idfa", "gaid", "aaid", "advertising id", "ad id", "adid", "mobile ad id", "device id",
                  "mobile advertising id", "ifa", "idfa gaid", "maid id"),
        description="IDFA or GAID, lowercase UUID.",
    ),
    FieldSpec(
        "maid_type", "MAID type", pl.String, "text", CATEGORY, max_length=4,
        synonyms=("maid type", "device type", "id type", "ad id type", "advertising id type", "os", "platform",
                  "device os"),
        choices=("IDFA", "GAID"),
    ),
    FieldSpec(
        "ip", "IP address", pl.String, "inet", IDENTIFIER, max_length=45,
        synonyms=("ip", "ip address", "ipaddress", "ip addr", "ipv4", "ipv6", "ip v4", "client ip"),
    ),
    FieldSpec(
        "email_normalized", "Email (UID2 normalised)", pl.String, "text", IDENTIFIER, derived=True,
        description="UID2 normalisation: trimmed, lowercase, gmail.com dots and +tag removed.",
    ),
    FieldSpec(
        "email_sha256", "Email hash (UID2)", pl.String, "char(44)", HASH, derived=True,
        description="Standard Base64 of the SHA-256 of email_normalized (44 characters).",
    ),
    FieldSpec("phone_e164", "Phone (E.164)", pl.String, "text", IDENTIFIER, derived=True),
    FieldSpec(
        "phone_sha256", "Phone hash (UID2)", pl.String, "char(44)", HASH, derived=True,
        description="Standard Base64 of the SHA-256 of phone_e164 (44 characters).",
    ),
)  # fmt: skip

FIELDS_BY_NAME: dict[str, FieldSpec] = {spec.name: spec for spec in FIELDS}
CANONICAL_FIELDS: tuple[str, ...] = tuple(spec.name for spec in FIELDS if not spec.derived)
DERIVED_FIELDS: tuple[str, ...] = tuple(spec.name for spec in FIELDS if spec.derived)
# Which derived columns a mapped source field brings along.
DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "email": ("email_normalized", "email_sha256"),
    "phone": ("phone_e164", "phone_sha256"),
}
# Column names the pipeline reserves in its frames (never used for a source header).
RESERVED_COLUMNS = frozenset({"__row", "custom"})


def polars_schema(fields: Iterable[str]) -> dict[str, type[pl.DataType]]:
    """{field: polars dtype} for the given canonical/derived field names, in the given order."""
    return {name: FIELDS_BY_NAME[name].dtype for name in fields}


# --- Header -> field proposals ---------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _tokens(header: str) -> list[str]:
    """Lowercase ASCII words of a header: `EMAIL_ADDR` -> [email, addr], `FirstName` -> [first, name]."""
    folded = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode("ascii")
    folded = _CAMEL.sub(" ", folded).lower().replace("#", " number ")
    return [token for token in _NON_ALNUM.split(folded) if token]


def _compact(header: str) -> str:
    return "".join(_tokens(header))


# Exact (compacted) synonym -> field. Compacting makes `E-mail`, `e_mail`, `E MAIL` and `EMail` one key.
_SYNONYMS: dict[str, str] = {}
for _spec in FIELDS:
    if _spec.derived:
        continue
    for _key in (_spec.name, _spec.label, *_spec.synonyms):
        _SYNONYMS.setdefault(_compact(_key), _spec.name)
# `# of employees` compacts to `numberofemployees`.
_SYNONYMS.setdefault("numberofemployees", "employee_count")

# Weaker evidence: a header containing one of these words (`Personal Email Address`, `HQ Phone`).
_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("email", "email"),
    ("mail", "email"),
    ("phone", "phone"),
    ("mobile", "phone"),
    ("cell", "phone"),
    ("telephone", "phone"),
    ("firstname", "first_name"),
    ("lastname", "last_name"),
    ("surname", "last_name"),
    ("title", "job_title"),
    ("company", "company_name"),
    ("domain", "domain"),
    ("website", "domain"),
    ("url", "domain"),
    ("industry", "industry"),
    ("revenue", "revenue"),
    ("employees", "employee_count"),
    ("headcount", "employee_count"),
    ("country", "country"),
    ("state", "region"),
    ("province", "region"),
    ("city", "city"),
    ("zip", "postal_code"),
    ("postcode", "postal_code"),
    ("postal", "postal_code"),
    ("idfa", "maid"),
    ("gaid", "maid"),
    ("maid", "maid"),
    ("ip", "ip"),
)
# Words that say the column is *about* the field rather than the field itself (`Email Opt-in`, `Phone Type`).
_DISQUALIFIERS = frozenset(
    {"opt", "optin", "optout", "status", "type", "hash", "sha256", "md5", "sha1", "date", "verified", "valid",
     "bounced", "consent", "flag", "id", "source"}
)  # fmt: skip


def _score(header: str) -> tuple[int, str | None]:
    """(2, field) for an exact synonym, (1, field) for a keyword, (0, None) otherwise."""
    key = _compact(header)
    if not key:
        return 0, None
    if key in _SYNONYMS:
        return 2, _SYNONYMS[key]
    tokens = _tokens(header)
    # Joined neighbours catch `first_name_1` style keys as well as single words.
    words = set(tokens) | {a + b for a, b in itertools.pairwise(tokens)}
    if words & _DISQUALIFIERS:
        return 0, None
    for word, field in _KEYWORDS:
        if word in words:
            return 1, field
    return 0, None


def propose_mapping(headers: Sequence[str]) -> dict[str, str | None]:
    """Source header -> proposed canonical field (None = keep as a custom field).

    Exact synonyms beat keyword matches; between equal matches the first header wins. Each canonical field is
    proposed at most once, the losers stay custom. Headers should be unique (see `unique_headers`).
    """
    scored = [(*_score(header), index, header) for index, header in enumerate(headers)]
    proposal: dict[str, str | None] = dict.fromkeys(headers)
    taken: set[str] = set()
    for score, field, _index, header in sorted(scored, key=lambda item: (-item[0], item[2])):
        if field is None or field in taken or score == 0:
            continue
        taken.add(field)
        proposal[header] = field
    return proposal


# --- Headers and custom field names ---------------------------------------------------------------


def unique_headers(headers: Sequence[str | None]) -> list[str]:
    """Headers made usable as column names: trimmed, blank -> `column_N` (1-based position), duplicates ->
    `Email (2)`, `Email (3)`; names reserved by the pipeline (`__row`) are treated as duplicates."""
    cleaned = [(header or "").strip() or f"column_{index}" for index, header in enumerate(headers, start=1)]
    taken: set[str] = set(RESERVED_COLUMNS)
    result: list[str] = []
    for name in cleaned:
        candidate = name
        suffix = 2
        while candidate in taken:
            candidate = f"{name} ({suffix})"
            suffix += 1
        taken.add(candidate)
        result.append(candidate)
    return result


_SLUG_MAX = 63  # a PostgreSQL identifier's length, should a custom field ever become a column


def custom_field_name(header: str, taken: set[str] | None = None) -> str:
    """A safe slug for a custom field (`Lead Score (%)` -> `lead_score`): ASCII lowercase, digits, underscores,
    starting with a letter, at most 63 characters. With `taken`, the result is made unique (`_2`, `_3`) against it
    and added to it, so one set per file gives unique names within the file."""
    slug = "_".join(_tokens(header))[:_SLUG_MAX].strip("_") or "field"
    if not slug[0].isalpha():
        slug = f"f_{slug}"[:_SLUG_MAX]
    if taken is None:
        return slug
    candidate = slug
    suffix = 2
    while candidate in taken or candidate in RESERVED_COLUMNS:
        tail = f"_{suffix}"
        candidate = slug[: _SLUG_MAX - len(tail)] + tail
        suffix += 1
    taken.add(candidate)
    return candidate


def custom_field_names(headers: Iterable[str]) -> dict[str, str]:
    """Source header -> unique custom field slug, for the custom columns of one file (order matters)."""
    taken: set[str] = set()
    return {header: custom_field_name(header, taken) for header in headers}


# --- Custom field types -----------------------------------------------------------------------------

INFER_SAMPLE_ROWS = 10_000


def infer_custom_types(df: pl.DataFrame, columns: Iterable[str], sample: int = INFER_SAMPLE_ROWS) -> dict[str, str]:
    """{column: type} for String columns of a sample (the first `sample` rows): `integer`, `decimal`, `boolean`,
    `date` when every non-empty sampled value parses as that type (same parsers as the import), else `text`.
    A column with no values is `text`."""
    from audiences import normalize_batch  # lazy: the normaliser imports this module (one definition of "a number")

    head = df.head(sample)
    result: dict[str, str] = {}
    for column in columns:
        values = head.get_column(column).cast(pl.String)
        present = normalize_batch.custom_values(values, "text").get_column("value").is_not_null()
        result[column] = "text"
        if not present.any():
            continue
        for type_name in ("integer", "decimal", "boolean", "date"):
            parsed = normalize_batch.custom_values(values, type_name)
            if parsed.get_column("reason").null_count() == parsed.height:
                result[column] = type_name
                break
    return result


# What a column can be mapped to (the derived fields are computed, never mapped).
MAPPABLE_FIELDS: tuple[str, ...] = CANONICAL_FIELDS


def field_label(name: str) -> str:
    spec = FIELDS_BY_NAME.get(name)
    return spec.label if spec is not None else name.replace("_", " ").capitalize()
