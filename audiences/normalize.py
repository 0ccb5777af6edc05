"""Validation and normalisation of audience field values: scalar reference functions and the vectorised batch.

Two layers that must agree value for value (property tests hold them to it):

* scalar functions (`normalize_email`, `normalize_phone`, `parse_integer`, ...): the readable specification, used
  for single values and by the tests;
* `normalize_batch`: the same rules as polars expressions over a whole batch of all-String columns, which the import
  pipeline calls. Only phones the vectorised NANP fast path cannot place and IPv6 addresses go through Python, and
  then only their unique values.

Email rules follow UID2 exactly (integrations.md 1.1, the `uid2-client` SDK's `normalize_email_string`) plus a
syntax check; hashes are standard Base64 of the SHA-256 digest (1.3). Regexes are written in the syntax common to
Python's `re` and Rust's `regex` (polars), with explicit character classes instead of `\\s`/`\\d`, whose Unicode
meaning differs between the two engines.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import ipaddress
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import phonenumbers
import polars as pl
import pyarrow as pa

from audiences.fields import CUSTOM_TYPES, FIELDS_BY_NAME
from p360.core.domains import DOMAIN_MAX, DOMAIN_RE_TEXT, PATH_RE_TEXT, PORT_RE_TEXT, SCHEME_RE_TEXT, USERINFO_RE_TEXT

# --- Shared building blocks -------------------------------------------------------------------------

# What "trim" removes: Unicode White_Space, exactly what polars' default strip_chars() (Rust's char::is_whitespace)
# removes, so the fast default can be used. A BOM inside a field is kept (the file's BOM is removed on reading).
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# Characters that never belong inside an email address or a host name: controls, whitespace, and the specials
# that show a list or markup rather than an address.
_UNSAFE = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER_TABLE = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())
ERROR_VALUE_CHARS = 200
CUSTOM_TEXT_MAX = 10_000
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Floats at or beyond 2**63 do not fit a bigint once rounded.
_INT64_FLOAT_LIMIT = 9.223372036854775e18

# Human-readable reasons (the quarantine report groups by them).
R_EMAIL = "invalid email address"
R_PHONE = "invalid phone number"
R_DOMAIN = "invalid domain"
R_COUNTRY = "unknown country"
R_NUMBER = "not a number"
R_WHOLE = "not a whole number"
R_RANGE = "number out of range"
R_MAID = "invalid mobile advertising ID"
R_MAID_ZERO = "mobile advertising ID is all zeros (tracking limited)"
R_MAID_TYPE = "unknown MAID type (expected IDFA or GAID)"
R_IP = "invalid IP address"
R_POSTAL = "invalid postal code"
R_BOOLEAN = "not a boolean"
R_DATE = "not a date (expected YYYY-MM-DD)"
R_NUL = "contains a NUL character"


def too_long_reason(limit: int) -> str:
    return f"too long (more than {limit} characters)"


def trim(raw: str | None) -> str | None:
    """Leading/trailing whitespace removed; None for None, empty and whitespace-only values."""
    if raw is None:
        return None
    value = raw.strip(WHITESPACE)
    return value or None


def trim_expr(expr: pl.Expr) -> pl.Expr:
    trimmed = expr.str.strip_chars()  # == str.strip(WHITESPACE), three times faster than an explicit set
    return pl.when(trimmed.str.len_bytes() > 0).then(trimmed)


def _ascii_lower(value: str) -> str:
    return value.translate(_ASCII_LOWER_TABLE)


def uid2_hash(normalized: str) -> str:
    """UID2 hash: standard Base64 (with padding) of the SHA-256 digest of the UTF-8 string; 44 characters."""
    return base64.b64encode(hashlib.sha256(normalized.encode("utf-8")).digest()).decode("ascii")


def uid2_hash_expr(expr: pl.Expr) -> pl.Expr:
    """`uid2_hash` over a column (nulls stay null), by `uid2_hashes` on the whole column at once."""
    # Not elementwise: polars would then hand over the column chunk by chunk, and the repeats of a column are
    # only visible whole.
    return expr.map_batches(uid2_hashes, return_dtype=pl.String, is_elementwise=False)


# A column is hashed once per distinct value when its values repeat at least this much (HyperLogLog estimate).
HASH_REPEAT_SHARE, HASH_REPEAT_MIN_ROWS = 0.5, 1_000


def uid2_hashes(values: pl.Series) -> pl.Series:
    """`uid2_hash` of every value of a String Series (nulls stay null).

    Columns whose values repeat (the phones of a CRM export: one company number on many rows) are hashed
    once per distinct value and mapped back; SHA-256 was most of what normalising such a column cost.
    """
    count = values.len()
    if count >= HASH_REPEAT_MIN_ROWS and int(values.approx_n_unique()) <= HASH_REPEAT_SHARE * count:  # type: ignore[arg-type]
        distinct = values.drop_nulls().unique()
        return values.replace_strict(distinct, _hash_all(distinct), default=None, return_dtype=pl.String)
    return _hash_all(values)


# Until DataFusion is loaded, columns shorter than this are hashed by hashlib in Python: 20K values take ~15-20 ms
# that way, while DataFusion's import (pandas with it) costs ~0.3 CPU-s once per process: most of a fresh process's
# 10K-row import (< 1 s goal). Once loaded, it hashes every column: ~6x less CPU per value than hashlib (a big
# import's repeating phones are hashed per distinct value, often under 20K a batch).
HASHLIB_MAX_ROWS = 20_000


def _datafusion_loaded() -> bool:
    return "datafusion" in sys.modules


def _hash_all(values: pl.Series) -> pl.Series:
    """`uid2_hash` of every value: hashlib for short columns while DataFusion is not loaded, DataFusion otherwise."""
    if values.len() < HASHLIB_MAX_ROWS and not _datafusion_loaded():
        return pl.Series(values.name, [None if v is None else uid2_hash(v) for v in values.to_list()], dtype=pl.String)
    return _hash_by_datafusion(values)


def _hash_by_datafusion(values: pl.Series) -> pl.Series:
    """SHA-256 by DataFusion, which answers the raw 32-byte digests (nulls stay null), Base64-encoded by polars.

    polars-hash answers hex only: formatting it, decoding it and the null handling around it cost three times the
    hashing itself (0.27 against 0.09 CPU-s for 572K values; docs/normalize.md).
    """
    # Imported here: DataFusion costs ~0.3 CPU-s to import, which every process importing this module (manage.py
    # commands, workers, web servers) would pay even when it never hashes.
    import datafusion

    # A context per call (0.1 ms): a context keeps every frame made from Arrow data registered as a table, so a
    # shared one would hold every hashed column for the life of the process. One partition keeps the row order.
    context = datafusion.SessionContext(datafusion.SessionConfig().with_target_partitions(1))
    frame = context.from_arrow(pa.table({"v": values.to_arrow()}))
    digests = frame.select(datafusion.functions.sha256(datafusion.col("v")).alias("h")).to_arrow_table()
    return pl.Series(values.name, digests.column("h"), dtype=pl.Binary).bin.encode("base64")


# --- Email ------------------------------------------------------------------------------------------

EMAIL_MAX = 254
_EMAIL_RE_TEXT = (
    rf"^[^@{_UNSAFE}<>()\[\]\\,;:\"]+"
    rf"@[^@{_UNSAFE}<>()\[\]\\,;:\".]+(?:\.[^@{_UNSAFE}<>()\[\]\\,;:\".]+)+$"
)
_EMAIL_RE = re.compile(_EMAIL_RE_TEXT)


def normalize_email(raw: str | None) -> str | None:
    """The UID2 normalised email, or None when empty or invalid.

    Trim; lowercase A-Z (only ASCII, as the SDK); for `gmail.com` exactly, drop the local part's `+tag` and dots.
    Invalid: not exactly one `@`, empty local part (also after the gmail rule, so `+@gmail.com`), a domain without
    a dot or with an empty label, whitespace/control characters or `<>()[]\\,;:"`, more than 254 characters.
    """
    value = trim(raw)
    if value is None:
        return None
    lowered = _ascii_lower(value)
    if len(lowered) > EMAIL_MAX or not _EMAIL_RE.fullmatch(lowered):
        return None
    local, domain = lowered.split("@")
    if domain == "gmail.com":
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
        return f"{local}@gmail.com"
    return lowered


def normalize_and_hash_email(raw: str | None) -> tuple[str, str] | None:
    normalized = normalize_email(raw)
    return None if normalized is None else (normalized, uid2_hash(normalized))


# --- Phone ------------------------------------------------------------------------------------------

PHONE_MAX = 64
_NANP_NSN = re.compile(r"^[2-9][0-9]{2}[2-9][0-9]{6}$")
# Regions whose national format is the plain NANP one (the fast path's default-country case).
_NANP_FAST_REGIONS = frozenset({"US", "CA"})
# Separators the NANP fast path drops: punctuation phonenumbers accepts (not a tab, which makes `parse` refuse);
# removed by polars' literal `replace_many` (a fifth cheaper than the regex `[ ().\-/]`).
PHONE_SEPARATOR_CHARS = (" ", "(", ")", ".", "-", "/")


def normalize_phone(raw: str | None, default_country: str = "US") -> str | None:
    """E.164 (`+12345678901`) or None when empty or invalid.

    Parsed by phonenumbers with `default_country` for numbers without `+`/IDD prefix. Valid when phonenumbers says
    the number is valid, except for country code 1 (NANP), where the number must be possible and follow the
    numbering plan (area code and exchange start with 2-9) because the fast path checks exactly that. UID2 requires
    10-15 digits including the country code. Extensions are dropped.
    """
    value = trim(raw)
    if value is None or len(value) > PHONE_MAX:
        return None
    try:
        number = phonenumbers.parse(value, default_country.upper())
    except phonenumbers.NumberParseException:
        return None
    if number.country_code == 1:
        national = phonenumbers.national_significant_number(number)
        if not (_NANP_NSN.match(national) and phonenumbers.is_possible_number(number)):
            return None
    elif not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if 10 <= len(e164) - 1 <= 15 else None


# --- Domain -----------------------------------------------------------------------------------------

# The domain rule is shared with Bombora (p360/core/domains.py); these names are the module's own shorthands.
_DOMAIN_RE_TEXT = DOMAIN_RE_TEXT
_DOMAIN_RE = re.compile(_DOMAIN_RE_TEXT)
_SCHEME_RE_TEXT = SCHEME_RE_TEXT
_PATH_RE_TEXT = PATH_RE_TEXT
_USERINFO_RE_TEXT = USERINFO_RE_TEXT
_PORT_RE_TEXT = PORT_RE_TEXT
_HOST_STEPS = tuple(re.compile(text) for text in (_SCHEME_RE_TEXT, _PATH_RE_TEXT, _USERINFO_RE_TEXT))
_PORT_RE = re.compile(_PORT_RE_TEXT)


def normalize_domain(raw: str | None) -> str | None:
    """Lowercase host name (`https://www.Example.com:443/about?x` -> `example.com`, `jane@acme.io` -> `acme.io`),
    or None when empty or not a host name (needs a dot; an IP address is not a domain). Internationalised names
    stay in Unicode, lowercased."""
    value = trim(raw)
    if value is None:
        return None
    host = value.lower()
    for step in _HOST_STEPS:
        host = step.sub("", host, count=1)
    host = _PORT_RE.sub("", host.removeprefix("www."), count=1).rstrip(".")
    if len(host) > DOMAIN_MAX or not _DOMAIN_RE.fullmatch(host):
        return None
    return host


# --- Country ----------------------------------------------------------------------------------------

# ISO 3166-1 alpha-2 -> alpha-3 (current codes). English names come from phonenumbers' territory names.
_ALPHA3: dict[str, str] = dict(
    re.findall(
        r"([A-Z]{2}):([A-Z]{3})",
        "AD:AND AE:ARE AF:AFG AG:ATG AI:AIA AL:ALB AM:ARM AO:AGO AQ:ATA AR:ARG AS:ASM AT:AUT AU:AUS AW:ABW AX:ALA "
        "AZ:AZE BA:BIH BB:BRB BD:BGD BE:BEL BF:BFA BG:BGR BH:BHR BI:BDI BJ:BEN BL:BLM BM:BMU BN:BRN BO:BOL BQ:BES "
        "BR:BRA BS:BHS BT:BTN BV:BVT BW:BWA BY:BLR BZ:BLZ CA:CAN CC:CCK CD:COD CF:CAF CG:COG CH:CHE CI:CIV CK:COK "
        "CL:CHL CM:CMR CN:CHN CO:COL CR:CRI CU:CUB CV:CPV CW:CUW CX:CXR CY:CYP CZ:CZE DE:DEU DJ:DJI DK:DNK DM:DMA "
        "DO:DOM DZ:DZA EC:ECU EE:EST EG:EGY EH:ESH ER:ERI ES:ESP ET:ETH FI:FIN FJ:FJI FK:FLK FM:FSM FO:FRO FR:FRA "
        "GA:GAB GB:GBR GD:GRD GE:GEO GF:GUF GG:GGY GH:GHA GI:GIB GL:GRL GM:GMB GN:GIN GP:GLP GQ:GNQ GR:GRC GS:SGS "
        "GT:GTM GU:GUM GW:GNB GY:GUY HK:HKG HM:HMD HN:HND HR:HRV HT:HTI HU:HUN ID:IDN IE:IRL IL:ISR IM:IMN IN:IND "
        "IO:IOT IQ:IRQ IR:IRN IS:ISL IT:ITA JE:JEY JM:JAM JO:JOR JP:JPN KE:KEN KG:KGZ KH:KHM KI:KIR KM:COM KN:KNA "
        "KP:PRK KR:KOR KW:KWT KY:CYM KZ:KAZ LA:LAO LB:LBN LC:LCA LI:LIE LK:LKA LR:LBR LS:LSO LT:LTU LU:LUX LV:LVA "
        "LY:LBY MA:MAR MC:MCO MD:MDA ME:MNE MF:MAF MG:MDG MH:MHL MK:MKD ML:MLI MM:MMR MN:MNG MO:MAC MP:MNP MQ:MTQ "
        "MR:MRT MS:MSR MT:MLT MU:MUS MV:MDV MW:MWI MX:MEX MY:MYS MZ:MOZ NA:NAM NC:NCL NE:NER NF:NFK NG:NGA NI:NIC "
        "NL:NLD NO:NOR NP:NPL NR:NRU NU:NIU NZ:NZL OM:OMN PA:PAN PE:PER PF:PYF PG:PNG PH:PHL PK:PAK PL:POL PM:SPM "
        "PN:PCN PR:PRI PS:PSE PT:PRT PW:PLW PY:PRY QA:QAT RE:REU RO:ROU RS:SRB RU:RUS RW:RWA SA:SAU SB:SLB SC:SYC "
        "SD:SDN SE:SWE SG:SGP SH:SHN SI:SVN SJ:SJM SK:SVK SL:SLE SM:SMR SN:SEN SO:SOM SR:SUR SS:SSD ST:STP SV:SLV "
        "SX:SXM SY:SYR SZ:SWZ TC:TCA TD:TCD TF:ATF TG:TGO TH:THA TJ:TJK TK:TKL TL:TLS TM:TKM TN:TUN TO:TON TR:TUR "
        "TT:TTO TV:TUV TW:TWN TZ:TZA UA:UKR UG:UGA UM:UMI US:USA UY:URY UZ:UZB VA:VAT VC:VCT VE:VEN VG:VGB VI:VIR "
        "VN:VNM VU:VUT WF:WLF WS:WSM YE:YEM YT:MYT ZA:ZAF ZM:ZMB ZW:ZWE",
    )
)
_COUNTRY_ALIASES = {
    "US": ("USA", "U.S.", "U.S.A.", "United States of America", "America", "US of A", "United States"),
    "GB": ("UK", "U.K.", "Great Britain", "Britain", "England", "Scotland", "Wales", "Northern Ireland",
           "United Kingdom of Great Britain and Northern Ireland"),
    "AE": ("UAE", "U.A.E.", "Emirates"),
    "KR": ("Korea", "Republic of Korea", "Korea, Republic of", "Korea (South)"),
    "KP": ("Korea (North)", "DPRK", "Democratic People's Republic of Korea"),
    "RU": ("Russian Federation",),
    "CZ": ("Czechia",),
    "NL": ("Holland", "The Netherlands"),
    "CD": ("DR Congo", "DRC", "Democratic Republic of the Congo", "Congo-Kinshasa", "Congo, Democratic Republic"),
    "CG": ("Republic of the Congo", "Congo-Brazzaville"),
    "CI": ("Ivory Coast", "Cote d'Ivoire"),
    "TR": ("Türkiye", "Turkiye"),
    "MK": ("North Macedonia",),
    "SZ": ("Eswatini",),
    "CV": ("Cabo Verde",),
    "MM": ("Burma",),
    "VA": ("Holy See", "Vatican City"),
    "VN": ("Viet Nam",),
    "LA": ("Lao PDR", "Lao People's Democratic Republic"),
    "IR": ("Iran, Islamic Republic of",),
    "SY": ("Syrian Arab Republic",),
    "TZ": ("Tanzania, United Republic of",),
    "BO": ("Bolivia, Plurinational State of",),
    "VE": ("Venezuela, Bolivarian Republic of",),
    "MD": ("Moldova, Republic of",),
    "PS": ("Palestine, State of", "Palestinian Territories"),
    "TW": ("Taiwan, Province of China", "Republic of China"),
    "CN": ("PRC", "People's Republic of China", "Mainland China"),
    "HK": ("Hong Kong SAR", "Hong Kong SAR China"),
    "MO": ("Macau", "Macao SAR"),
    "FM": ("Micronesia, Federated States of",),
    "BN": ("Brunei Darussalam",),
    "RE": ("Réunion",),
    "CW": ("Curacao",),
    "BL": ("Saint Barthelemy", "St. Barthelemy"),
    "AX": ("Aland Islands",),
    "ST": ("São Tomé and Príncipe",),
    "SX": ("Sint Maarten",),
    "MF": ("Saint Martin (French part)",),
    "TL": ("East Timor",),
    "FK": ("Falkland Islands (Malvinas)",),
    "VI": ("US Virgin Islands", "Virgin Islands, U.S."),
    "VG": ("Virgin Islands, British",),
    "KN": ("St Kitts and Nevis",),
    "LC": ("St Lucia",),
    "VC": ("St Vincent and the Grenadines",),
    "DE": ("Deutschland",),
    "ES": ("España", "Espana"),
    "CH": ("Schweiz", "Suisse"),
    "AT": ("Österreich", "Osterreich"),
    "BR": ("Brasil",),
    "MX": ("México",),
    "IT": ("Italia",),
    "JP": ("Nippon",),
}  # fmt: skip
# Key: lowercased, `&` -> and, ASCII punctuation and spaces removed (`U.S.A.`, `usa`, `U S A` are one key).
_COUNTRY_KEY_STRIP = r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f\u00a0]"
_COUNTRY_KEY_STRIP_RE = re.compile(_COUNTRY_KEY_STRIP)


def _country_key(value: str) -> str:
    return _COUNTRY_KEY_STRIP_RE.sub("", value.lower().replace("&", "and"))


COUNTRY_NAMES_MODULE = "phonenumbers.geodata.locale"


def load_country_names_alone() -> None:
    """Load phonenumbers' country-name table (`geodata.locale`, ~40 ms) without its package's geocoding data.

    The normaliser's country table imports `phonenumbers.geodata.locale`, and Python runs the package's
    `__init__` first, which imports 38 MB of prefix-to-place data (`GEOCODE_DATA`, data0..data22) that nothing
    here reads: 1.3-2.2 s on the first import of a fresh process (most of the 10K-row import's 1.44 s cold, against
    0.3-0.44 s warm). Registered alone under its own (package-relative: it imports `..util`) name, the import statement finds it in `sys.modules` and never
    loads the package. Left alone when the package (or the module) is loaded already.
    """
    if COUNTRY_NAMES_MODULE in sys.modules or "phonenumbers.geodata" in sys.modules:
        return
    package = importlib.util.find_spec("phonenumbers")
    if package is None or package.origin is None:
        return  # not installed: the normaliser's own import then fails with the usual error
    location = Path(package.origin).parent / "geodata" / "locale.py"
    spec = importlib.util.spec_from_file_location(COUNTRY_NAMES_MODULE, location)
    if spec is None or spec.loader is None or not location.exists():
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[COUNTRY_NAMES_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[COUNTRY_NAMES_MODULE]
        raise


@functools.cache
def country_table() -> dict[str, str]:
    """Codes and English names -> alpha-2. Built on first use (a process that never reads a country never loads
    phonenumbers' country names), from its names module alone (`load_country_names_alone`)."""
    load_country_names_alone()
    from phonenumbers.geodata.locale import LOCALE_DATA

    table: dict[str, str] = {}
    for code, alpha3 in _ALPHA3.items():
        table[_country_key(code)] = code
        table[_country_key(alpha3)] = code
    names: dict[str, list[str]] = {code: [] for code in _ALPHA3}
    for code in _ALPHA3:
        english = LOCALE_DATA.get(code, {}).get("aa")
        if english and not english.startswith("*"):
            names[code].append(english)
    for code, aliases in _COUNTRY_ALIASES.items():
        names[code].extend(aliases)
    for code, spellings in names.items():
        for spelling in spellings:
            for variant in (spelling, f"the {spelling}", spelling.removeprefix("The ").removeprefix("the ")):
                key = _country_key(variant)
                # Codes are in first (setdefault), so a name never shadows a code.
                table.setdefault(key, code)
    return table


def normalize_country(raw: str | None) -> str | None:
    """ISO 3166-1 alpha-2 from an alpha-2 or alpha-3 code or an English (or common) name; None when unknown."""
    value = trim(raw)
    return None if value is None else country_table().get(_country_key(value))


# --- Numbers ----------------------------------------------------------------------------------------

_CURRENCY = r"[$€£¥₹]|USD|EUR|GBP|CAD|AUD|usd|eur|gbp|cad|aud"
_GAP = r"[ \u00a0\u202f]*"
_NUMBER_RE_TEXT = (
    rf"^(?P<s1>[-+])?{_GAP}(?:{_CURRENCY})?{_GAP}(?P<s2>[-+])?{_GAP}"
    r"(?:"
    r"(?P<comma>[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?)"
    r"|(?P<space>[1-9][0-9]{0,2}(?:[ \u00a0\u202f'][0-9]{3})+(?:[.,][0-9]+)?)"
    r"|(?P<dot>[1-9][0-9]{0,2}(?:\.[0-9]{3}){2,}(?:,[0-9]+)?|[1-9][0-9]{0,2}(?:\.[0-9]{3})+,[0-9]+)"
    r"|(?P<dcomma>[0-9]+,[0-9]{1,2}|[0-9]+,[0-9]{4,}|0,[0-9]+)"
    r"|(?P<plain>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
    r")"
    rf"{_GAP}(?P<suffix>[kK]|[mM][mM]?|[bB][nN]?)?{_GAP}(?:{_CURRENCY})?$"
)
_NUMBER_RE = re.compile(_NUMBER_RE_TEXT)
_SUFFIX_DIGITS = {"k": 3, "m": 6, "mm": 6, "b": 9, "bn": 9}
_GROUP_SEPARATORS = re.compile(r"[ \u00a0\u202f']")


_MULTIPLIERS = {3: 1e3, 6: 1e6, 9: 1e9}


@dataclass(frozen=True)
class _Number:
    sign: str  # "" or "-"
    body: str  # digits with an optional `.` decimal point, separators removed, before the suffix
    shift: int  # decimal digits the suffix shifts by (k 3, m 6, b 9)

    @property
    def whole_and_fraction(self) -> tuple[str, str]:
        """The exact value's digits before and after the point, the suffix applied by shifting digits."""
        whole, _, fraction = self.body.partition(".")
        padded = fraction + "000000000"
        return whole + padded[: self.shift], (padded[self.shift :] if self.shift else fraction)


def _parse_number(raw: str | None) -> _Number | None:
    """The exact decimal a number-like string stands for (suffixes applied by shifting digits), or None."""
    value = trim(raw)
    if value is None:
        return None
    match = _NUMBER_RE.fullmatch(value)
    if match is None or (match["s1"] and match["s2"]):
        return None
    if match["comma"]:
        body = match["comma"].replace(",", "")
    elif match["space"]:
        body = _GROUP_SEPARATORS.sub("", match["space"]).replace(",", ".")
    elif match["dot"]:
        body = match["dot"].replace(".", "").replace(",", ".")
    elif match["dcomma"]:
        body = match["dcomma"].replace(",", ".")
    else:
        body = match["plain"]
    shift = _SUFFIX_DIGITS.get((match["suffix"] or "").lower(), 0)
    sign = "-" if "-" in (match["s1"] or "", match["s2"] or "") else ""
    return _Number(sign, body, shift)


def parse_decimal(raw: str | None) -> float | None:
    """A float from `1,234.5`, `1 234,5`, `1.234.567`, `$2.5M`, `-3`; None when empty, garbage or not finite.

    Thousands separators: `,` (then `.` is the decimal point), space/NBSP/apostrophe (either decimal mark), `.`
    only when unambiguous (two or more groups, or a decimal comma). `1.234` is one point two three four; `1,5` is
    one and a half; `1234,567` is rejected. Suffixes k, m/mm, b/bn; currency symbols and USD/EUR/GBP/CAD/AUD.
    """
    number = _parse_number(raw)
    if number is None:
        return None
    result = float(number.sign + number.body)
    if number.shift:
        result *= _MULTIPLIERS[number.shift]
    return result if math.isfinite(result) else None


def parse_integer(raw: str | None, *, maximum: int = INT64_MAX) -> int | None:
    """A whole number (same syntax as `parse_decimal`; `12.0` and `2.5k` are whole, `12.5` is not) within
    +-maximum; None otherwise."""
    number = _parse_number(raw)
    if number is None:
        return None
    whole, fraction = number.whole_and_fraction
    if fraction.strip("0"):
        return None
    result = int(f"{number.sign}{whole or '0'}")
    return result if -maximum <= result <= maximum else None


def parse_rounded(raw: str | None, *, maximum: int = INT64_MAX) -> int | None:
    """A number rounded half to even to a whole (revenue in whole units) within +-maximum; None otherwise."""
    value = parse_decimal(raw)
    if value is None or abs(value) >= _INT64_FLOAT_LIMIT:
        return None
    result = round(value)
    return result if -maximum <= result <= maximum else None


# --- Mobile advertising IDs, IP ---------------------------------------------------------------------

_MAID_RE_TEXT = r"^([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})$"
_MAID_RE = re.compile(_MAID_RE_TEXT)
_MAID_ZERO = "00000000-0000-0000-0000-000000000000"
_MAID_TYPES = {
    "idfa": "IDFA", "ios": "IDFA", "apple": "IDFA", "iphone": "IDFA", "ipad": "IDFA",
    "gaid": "GAID", "aaid": "GAID", "android": "GAID", "google": "GAID",
}  # fmt: skip


def normalize_maid(raw: str | None) -> str | None:
    """Lowercase hyphenated UUID (IDFA/GAID), None when empty, malformed or all zeros."""
    value = trim(raw)
    if value is None:
        return None
    match = _MAID_RE.fullmatch(value.lower())
    if match is None:
        return None
    maid = "-".join(match.groups())
    return None if maid == _MAID_ZERO else maid


def normalize_maid_type(raw: str | None) -> str | None:
    value = trim(raw)
    return None if value is None else _MAID_TYPES.get(value.lower())


_IPV4_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4_RE_TEXT = rf"^{_IPV4_OCTET}(?:\.{_IPV4_OCTET}){{3}}$"


def normalize_ip(raw: str | None) -> str | None:
    """IPv4 as given, IPv6 compressed lowercase (Python's ipaddress rules: no leading zeros); None when invalid."""
    value = trim(raw)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


POSTAL_RE_TEXT = r"^[0-9A-Z](?:[0-9A-Z \-]*[0-9A-Z])?$"
_POSTAL_RE = re.compile(POSTAL_RE_TEXT)


def normalize_postal_code(raw: str | None) -> str | None:
    """Uppercase ASCII letters, digits, spaces and hyphens (`sw1a 1aa` -> `SW1A 1AA`), at most 20 characters."""
    value = trim(raw)
    if value is None:
        return None
    upper = value.upper()
    return upper if len(upper) <= 20 and _POSTAL_RE.fullmatch(upper) else None


# --- Custom values ----------------------------------------------------------------------------------

_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_DATE_RE_TEXT = r"^[12][0-9]{3}[-/][0-9]{2}[-/][0-9]{2}$"
_DATE_RE = re.compile(_DATE_RE_TEXT)


def parse_boolean(raw: str | None) -> bool | None:
    value = trim(raw)
    if value is None:
        return None
    lowered = value.lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else None


def parse_date(raw: str | None) -> date | None:
    """`YYYY-MM-DD` or `YYYY/MM/DD`, a real calendar date; None otherwise."""
    value = trim(raw)
    if value is None or not _DATE_RE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value.replace("/", "-"), "%Y-%m-%d").date()
    except ValueError:
        return None


_CUSTOM_DTYPES: dict[str, type[pl.DataType]] = {
    "integer": pl.Int64,
    "decimal": pl.Float64,
    "boolean": pl.Boolean,
    "date": pl.Date,
    "text": pl.String,
}


def custom_value(type_name: str, raw: str | None) -> tuple[Any, str | None]:
    """(typed value or None, reason or None) of one custom field value: the scalar twin of `custom_value_expr`."""
    value = trim(raw)
    if value is None:
        return None, None
    if type_name == "integer":
        number = parse_integer(value)
        return number, None if number is not None else _number_reason(value, INT64_MAX)
    if type_name == "decimal":
        decimal = parse_decimal(value)
        return decimal, None if decimal is not None else R_NUMBER
    if type_name == "boolean":
        flag = parse_boolean(value)
        return flag, None if flag is not None else R_BOOLEAN
    if type_name == "date":
        day = parse_date(value)
        return day, None if day is not None else R_DATE
    if type_name == "text":
        return _text_value(value, CUSTOM_TEXT_MAX)
    raise ValueError(f"unknown custom type {type_name!r} (one of {', '.join(CUSTOM_TYPES)})")


def _number_reason(value: str, maximum: int) -> str:
    number = _parse_number(value)
    if number is None:
        return R_NUMBER
    whole, fraction = number.whole_and_fraction
    if fraction.strip("0"):
        return R_WHOLE
    return R_RANGE if abs(int(whole or "0")) > maximum else R_NUMBER


def _text_value(value: str, limit: int) -> tuple[str | None, str | None]:
    if "\x00" in value:
        return None, R_NUL
    if len(value) > limit:
        return None, too_long_reason(limit)
    return value, None


# --- One canonical field, scalar ----------------------------------------------------------------------


def normalize_value(field: str, raw: str | None, *, default_country: str = "US") -> tuple[dict[str, Any], str | None]:
    """The scalar twin of `normalize_batch` for one canonical field: ({output column: value}, reason or None).

    Empty values give ({}, None); invalid ones ({}, reason); valid ones every output column of the field (the field
    itself and its derived columns).
    """
    value = trim(raw)
    if value is None:
        return {}, None
    spec = FIELDS_BY_NAME[field]
    if field == "email":
        normalized = normalize_email(value)
        if normalized is None:
            return {}, R_EMAIL
        return {"email": value, "email_normalized": normalized, "email_sha256": uid2_hash(normalized)}, None
    if field == "phone":
        e164 = normalize_phone(value, default_country)
        if e164 is None:
            return {}, R_PHONE
        return {"phone": value, "phone_e164": e164, "phone_sha256": uid2_hash(e164)}, None
    simple: dict[str, tuple[Callable[[str], Any], str]] = {
        "domain": (normalize_domain, R_DOMAIN),
        "country": (normalize_country, R_COUNTRY),
        "maid_type": (normalize_maid_type, R_MAID_TYPE),
        "ip": (normalize_ip, R_IP),
        "postal_code": (normalize_postal_code, R_POSTAL),
    }
    if field in simple:
        function, reason = simple[field]
        result = function(value)
        return ({field: result}, None) if result is not None else ({}, reason)
    if field == "maid":
        maid = normalize_maid(value)
        if maid is not None:
            return {field: maid}, None
        return {}, R_MAID_ZERO if _MAID_RE.fullmatch(value.lower()) else R_MAID
    if field == "employee_count":
        count = parse_integer(value, maximum=INT32_MAX)
        return ({field: count}, None) if count is not None else ({}, _number_reason(value, INT32_MAX))
    if field == "revenue":
        revenue = parse_rounded(value)
        return (
            ({field: revenue}, None)
            if revenue is not None
            else ({}, R_NUMBER if parse_decimal(value) is None else R_RANGE)
        )
    plain, problem = _text_value(value, spec.max_length or CUSTOM_TEXT_MAX)
    return ({field: plain}, None) if problem is None else ({}, problem)
