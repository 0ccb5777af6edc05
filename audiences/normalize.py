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
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import phonenumbers
import polars as pl
from phonenumbers.geodata.locale import LOCALE_DATA
from polars_hash import CryptographicHashingNameSpace

from audiences.fields import CUSTOM_TYPES, DERIVED_FROM, FIELDS, FIELDS_BY_NAME, custom_field_names

# --- Shared building blocks -------------------------------------------------------------------------

# What "trim" removes: Unicode White_Space (as Rust's char::is_whitespace) plus the BOM / zero-width no-break space.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
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
    trimmed = expr.str.strip_chars(WHITESPACE)
    return pl.when(trimmed.str.len_bytes() > 0).then(trimmed)


def _ascii_lower(value: str) -> str:
    return value.translate(_ASCII_LOWER_TABLE)


def _ascii_lower_expr(expr: pl.Expr) -> pl.Expr:
    # to_lowercase is Unicode-aware; the SDK lowercases A-Z only. Same result for ASCII, so only rows with
    # non-ASCII characters take the slower exact path.
    return (
        pl.when(expr.str.contains(r"[^\x00-\x7f]"))
        .then(expr.str.replace_many(list(_ASCII_UPPER), list(_ASCII_UPPER.lower())))
        .otherwise(expr.str.to_lowercase())
    )


def uid2_hash(normalized: str) -> str:
    """UID2 hash: standard Base64 (with padding) of the SHA-256 digest of the UTF-8 string; 44 characters."""
    return base64.b64encode(hashlib.sha256(normalized.encode("utf-8")).digest()).decode("ascii")


def uid2_hash_expr(expr: pl.Expr) -> pl.Expr:
    hex_digest = CryptographicHashingNameSpace(expr).sha2_256()
    return hex_digest.str.decode("hex").bin.encode("base64")


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
    if len(lowered) > EMAIL_MAX or not _EMAIL_RE.match(lowered):
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


def _email_exprs(trimmed: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(normalised email or null, is-valid) for a trimmed String expression."""
    lowered = _ascii_lower_expr(trimmed)
    syntax_ok = lowered.str.contains(_EMAIL_RE_TEXT) & (lowered.str.len_chars() <= EMAIL_MAX)
    is_gmail = lowered.str.ends_with("@gmail.com")
    gmail_local = lowered.str.extract(r"^([^+@]*)", 1).str.replace_all(".", "", literal=True)
    valid = syntax_ok & (~is_gmail | (gmail_local.str.len_bytes() > 0))
    normalized = pl.when(valid).then(pl.when(is_gmail).then(gmail_local + "@gmail.com").otherwise(lowered))
    return normalized, valid


# --- Phone ------------------------------------------------------------------------------------------

PHONE_MAX = 64
_NANP_NSN = re.compile(r"^[2-9][0-9]{2}[2-9][0-9]{6}$")
# Regions whose national format is the plain NANP one (the fast path's default-country case).
_NANP_FAST_REGIONS = frozenset({"US", "CA"})
_PHONE_SEPARATORS = r"[ \t().\-/]"


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


def _phone_fast_expr(trimmed: pl.Expr, default_country: str) -> pl.Expr:
    """E.164 for plain NANP numbers (`(234) 567-8901`, `+1 234.567.8901`), null for everything else."""
    compact = trimmed.str.replace_all(_PHONE_SEPARATORS, "")
    prefix = r"(?:\+1|1)?" if default_country.upper() in _NANP_FAST_REGIONS else r"\+1"
    national = compact.str.extract(rf"^{prefix}([2-9][0-9]{{2}}[2-9][0-9]{{6}})$", 1)
    return pl.when(trimmed.str.len_chars() <= PHONE_MAX).then("+1" + national)


# --- Domain -----------------------------------------------------------------------------------------

DOMAIN_MAX = 253
_LABEL_CHAR = r"a-z0-9_\u00c0-\U0010ffff"
_DOMAIN_RE_TEXT = (
    rf"^(?:[{_LABEL_CHAR}](?:[{_LABEL_CHAR}\-]*[{_LABEL_CHAR}])?\.)+"
    rf"[a-z\u00c0-\U0010ffff](?:[{_LABEL_CHAR}\-]*[{_LABEL_CHAR}])?$"
)
_DOMAIN_RE = re.compile(_DOMAIN_RE_TEXT)
_DOMAIN_BAD_RE_TEXT = rf"[{_UNSAFE}]"
_DOMAIN_BAD_RE = re.compile(_DOMAIN_BAD_RE_TEXT)
_SCHEME_RE_TEXT = r"^(?:[a-z][a-z0-9+.\-]*:)?//"
_SCHEME_RE = re.compile(_SCHEME_RE_TEXT)
_HOST_RE = re.compile(r"^[^/?#]*")
_PORT_RE_TEXT = r":[0-9]*$"
_PORT_RE = re.compile(_PORT_RE_TEXT)


def normalize_domain(raw: str | None) -> str | None:
    """Lowercase host name (`https://www.Example.com:443/about?x` -> `example.com`, `jane@acme.io` -> `acme.io`),
    or None when empty or not a host name. Internationalised names stay in Unicode (lowercased)."""
    value = trim(raw)
    if value is None:
        return None
    host = _SCHEME_RE.sub("", value.lower(), count=1)
    host = _HOST_RE.match(host).group(0)  # type: ignore[union-attr]  # matches every string
    host = host.rsplit("@", 1)[-1]
    host = _PORT_RE.sub("", host, count=1)
    host = host.rstrip(".")
    host = host.removeprefix("www.")
    if len(host) > DOMAIN_MAX or _DOMAIN_BAD_RE.search(host) or not _DOMAIN_RE.match(host):
        return None
    return host


def _domain_expr(trimmed: pl.Expr) -> pl.Expr:
    host = trimmed.str.to_lowercase().str.replace(_SCHEME_RE_TEXT, "")
    host = host.str.extract(r"^([^/?#]*)", 1)
    host = host.str.extract(r"([^@]*)$", 1)
    host = host.str.replace(_PORT_RE_TEXT, "").str.strip_chars_end(".")
    host = host.str.strip_prefix("www.")
    valid = (
        (host.str.len_chars() <= DOMAIN_MAX)
        & ~host.str.contains(_DOMAIN_BAD_RE_TEXT)
        & host.str.contains(_DOMAIN_RE_TEXT)
    )
    return pl.when(valid).then(host)


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


def _country_table() -> dict[str, str]:
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


COUNTRY_TABLE: dict[str, str] = _country_table()


def normalize_country(raw: str | None) -> str | None:
    """ISO 3166-1 alpha-2 from an alpha-2 or alpha-3 code or an English (or common) name; None when unknown."""
    value = trim(raw)
    return None if value is None else COUNTRY_TABLE.get(_country_key(value))


def _country_expr(trimmed: pl.Expr) -> pl.Expr:
    key = trimmed.str.to_lowercase().str.replace_all("&", "and", literal=True).str.replace_all(_COUNTRY_KEY_STRIP, "")
    return key.replace_strict(COUNTRY_TABLE, default=None, return_dtype=pl.String)


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


@dataclass(frozen=True)
class _Number:
    sign: str  # "" or "-"
    whole: str  # digits before the decimal point (may be empty)
    fraction: str  # digits after it (may be empty)

    @property
    def text(self) -> str:
        return f"{self.sign}{self.whole or '0'}.{self.fraction or '0'}"


def _parse_number(raw: str | None) -> _Number | None:
    """The exact decimal a number-like string stands for (suffixes applied by shifting digits), or None."""
    value = trim(raw)
    if value is None:
        return None
    match = _NUMBER_RE.match(value)
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
    whole, _, fraction = body.partition(".")
    shift = _SUFFIX_DIGITS.get((match["suffix"] or "").lower(), 0)
    if shift:
        padded = fraction.ljust(shift, "0")
        whole, fraction = whole + padded[:shift], padded[shift:]
    sign = "-" if "-" in (match["s1"] or "", match["s2"] or "") else ""
    return _Number(sign, whole, fraction)


def parse_decimal(raw: str | None) -> float | None:
    """A float from `1,234.5`, `1 234,5`, `1.234.567`, `$2.5M`, `-3`; None when empty, garbage or not finite.

    Thousands separators: `,` (then `.` is the decimal point), space/NBSP/apostrophe (either decimal mark), `.`
    only when unambiguous (two or more groups, or a decimal comma). `1.234` is one point two three four; `1,5` is
    one and a half; `1234,567` is rejected. Suffixes k, m/mm, b/bn; currency symbols and USD/EUR/GBP/CAD/AUD.
    """
    number = _parse_number(raw)
    if number is None:
        return None
    result = float(number.text)
    return result if math.isfinite(result) else None


def parse_integer(raw: str | None, *, maximum: int = INT64_MAX) -> int | None:
    """A whole number (same syntax as `parse_decimal`; `12.0` and `2.5k` are whole, `12.5` is not) within
    +-maximum; None otherwise."""
    number = _parse_number(raw)
    if number is None or number.fraction.strip("0"):
        return None
    result = int(f"{number.sign}{number.whole or '0'}")
    return result if -maximum <= result <= maximum else None


def parse_rounded(raw: str | None, *, maximum: int = INT64_MAX) -> int | None:
    """A number rounded half to even to a whole (revenue in whole units) within +-maximum; None otherwise."""
    value = parse_decimal(raw)
    if value is None or abs(value) >= _INT64_FLOAT_LIMIT:
        return None
    result = round(value)
    return result if -maximum <= result <= maximum else None


def _number_parts_expr(trimmed: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(matched, sign, whole digits, fraction digits) as expressions; the same steps as `_parse_number`."""
    groups = trimmed.str.extract_groups(_NUMBER_RE_TEXT)
    s1, s2 = groups.struct.field("s1"), groups.struct.field("s2")
    body = pl.coalesce(
        groups.struct.field("comma").str.replace_all(",", "", literal=True),
        groups.struct.field("space").str.replace_all(r"[ \u00a0\u202f']", "").str.replace_all(",", ".", literal=True),
        groups.struct.field("dot").str.replace_all(".", "", literal=True).str.replace_all(",", ".", literal=True),
        groups.struct.field("dcomma").str.replace_all(",", ".", literal=True),
        groups.struct.field("plain"),
    )
    matched = body.is_not_null() & ~(s1.is_not_null() & s2.is_not_null())
    whole = body.str.extract(r"^([0-9]*)", 1)
    fraction = body.str.extract(r"\.([0-9]*)$", 1).fill_null("")
    shift = (
        groups.struct.field("suffix")
        .str.to_lowercase()
        .replace_strict(_SUFFIX_DIGITS, default=0, return_dtype=pl.Int64)
        .fill_null(0)
    )
    # Shift the decimal point by the suffix (0, 3, 6 or 9 digits); trailing zeros left in the fraction are harmless.
    padded = fraction + "000000000"
    whole = whole + padded.str.slice(0, shift)
    fraction = padded.str.slice(shift)
    sign = pl.when((s1 == "-") | (s2 == "-")).then(pl.lit("-")).otherwise(pl.lit(""))
    return matched, sign, whole, fraction


def _decimal_expr(trimmed: pl.Expr) -> pl.Expr:
    matched, sign, whole, fraction = _number_parts_expr(trimmed)
    text = sign + pl.when(whole == "").then(pl.lit("0")).otherwise(whole) + "."
    text = text + pl.when(fraction == "").then(pl.lit("0")).otherwise(fraction)
    value = text.cast(pl.Float64, strict=False)
    return pl.when(matched & value.is_finite()).then(value)


def _integer_exprs(trimmed: pl.Expr, maximum: int) -> tuple[pl.Expr, pl.Expr]:
    """(value as Int64 or null, reason or null) for whole numbers within +-maximum."""
    matched, sign, whole, fraction = _number_parts_expr(trimmed)
    is_whole = fraction.str.contains(r"^0*$")
    digits = pl.when(whole == "").then(pl.lit("0")).otherwise(whole)
    integer = (sign + digits).cast(pl.Int64, strict=False)
    in_range = integer.is_between(-maximum, maximum)
    ok = matched & is_whole & in_range.fill_null(False)
    reason = (
        pl.when(~matched)
        .then(pl.lit(R_NUMBER))
        .when(~is_whole)
        .then(pl.lit(R_WHOLE))
        .when(~in_range.fill_null(False))
        .then(pl.lit(R_RANGE))
    )
    return pl.when(ok).then(integer), pl.when(trimmed.is_not_null()).then(reason)


def _rounded_exprs(trimmed: pl.Expr, maximum: int) -> tuple[pl.Expr, pl.Expr]:
    value = _decimal_expr(trimmed)
    fits = value.abs() < _INT64_FLOAT_LIMIT
    rounded = pl.when(fits).then(value.round(0, mode="half_to_even")).cast(pl.Int64, strict=False)
    in_range = rounded.is_between(-maximum, maximum).fill_null(False)
    reason = pl.when(value.is_null()).then(pl.lit(R_NUMBER)).when(~in_range).then(pl.lit(R_RANGE))
    return pl.when(in_range).then(rounded), pl.when(trimmed.is_not_null()).then(reason)


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
    match = _MAID_RE.match(value.lower())
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
    return upper if len(upper) <= 20 and _POSTAL_RE.match(upper) else None


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
    if value is None or not _DATE_RE.match(value):
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


def custom_value_expr(trimmed: pl.Expr, type_name: str) -> tuple[pl.Expr, pl.Expr]:
    """(typed value or null, reason or null) for a trimmed String expression and a custom type."""
    if type_name == "integer":
        return _integer_exprs(trimmed, INT64_MAX)
    if type_name == "decimal":
        value = _decimal_expr(trimmed)
        return value, pl.when(trimmed.is_not_null() & value.is_null()).then(pl.lit(R_NUMBER))
    if type_name == "boolean":
        lowered = trimmed.str.to_lowercase()
        flag = pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)
        return flag, pl.when(trimmed.is_not_null() & flag.is_null()).then(pl.lit(R_BOOLEAN))
    if type_name == "date":
        shaped = pl.when(trimmed.str.contains(_DATE_RE_TEXT)).then(trimmed.str.replace_all("/", "-", literal=True))
        day = shaped.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        return day, pl.when(trimmed.is_not_null() & day.is_null()).then(pl.lit(R_DATE))
    if type_name == "text":
        return _text_exprs(trimmed, CUSTOM_TEXT_MAX)
    raise ValueError(f"unknown custom type {type_name!r} (one of {', '.join(CUSTOM_TYPES)})")


def _number_reason(value: str, maximum: int) -> str:
    number = _parse_number(value)
    if number is None:
        return R_NUMBER
    if number.fraction.strip("0"):
        return R_WHOLE
    return R_RANGE if abs(int(number.whole or "0")) > maximum else R_NUMBER


def _text_value(value: str, limit: int) -> tuple[str | None, str | None]:
    if "\x00" in value:
        return None, R_NUL
    if len(value) > limit:
        return None, too_long_reason(limit)
    return value, None


def _text_exprs(trimmed: pl.Expr, limit: int) -> tuple[pl.Expr, pl.Expr]:
    reason = (
        pl.when(trimmed.str.contains("\x00", literal=True))
        .then(pl.lit(R_NUL))
        .when(trimmed.str.len_chars() > limit)
        .then(pl.lit(too_long_reason(limit)))
    )
    return pl.when(reason.is_null()).then(trimmed), reason


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
        return {}, R_MAID_ZERO if _MAID_RE.match(value.lower()) else R_MAID
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
    text, reason = _text_value(value, spec.max_length or CUSTOM_TEXT_MAX)
    return ({field: text}, None) if reason is None else ({}, reason)


# --- The batch ----------------------------------------------------------------------------------------

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
    `custom` (JSON object text or null), for rows without errors. `errors`: one row per failing value."""

    records: pl.DataFrame
    errors: pl.DataFrame


@dataclass
class _Output:
    """What one source column contributes: output columns, its reason column, and Python fallbacks to run."""

    header: str
    field: str  # canonical field, or "custom:<type>"
    columns: dict[str, pl.Expr]
    reason: pl.Expr


def _field_output(field: str, trimmed: pl.Expr, default_country: str, tag: str) -> _Output:
    spec = FIELDS_BY_NAME[field]
    if field == "email":
        normalized, valid = _email_exprs(trimmed)
        columns = {"email": pl.when(valid).then(trimmed), "email_normalized": normalized}
        return _Output("", field, columns, pl.when(trimmed.is_not_null() & ~valid).then(pl.lit(R_EMAIL)))
    if field == "phone":
        # Fallback rows are resolved after the first pass (see _resolve_fallbacks); `__fb_*` marks them.
        fast = _phone_fast_expr(trimmed, default_country)
        columns = {
            "phone": trimmed,
            "phone_e164": fast,
            f"__fb_{tag}": trimmed.is_not_null() & fast.is_null(),
            f"__t_{tag}": trimmed,
        }
        return _Output("", field, columns, pl.lit(None, dtype=pl.String))
    if field == "ip":
        ipv4 = pl.when(trimmed.str.contains(_IPV4_RE_TEXT)).then(trimmed)
        columns = {
            "ip": ipv4,
            f"__fb_{tag}": trimmed.str.contains(":", literal=True).fill_null(False),
            f"__t_{tag}": trimmed,
        }
        return _Output("", field, columns, pl.lit(None, dtype=pl.String))
    if field == "domain":
        value = _domain_expr(trimmed)
        return _Output(
            "", field, {field: value}, pl.when(trimmed.is_not_null() & value.is_null()).then(pl.lit(R_DOMAIN))
        )
    if field == "country":
        value = _country_expr(trimmed)
        return _Output(
            "", field, {field: value}, pl.when(trimmed.is_not_null() & value.is_null()).then(pl.lit(R_COUNTRY))
        )
    if field == "maid_type":
        value = trimmed.str.to_lowercase().replace_strict(_MAID_TYPES, default=None, return_dtype=pl.String)
        return _Output(
            "", field, {field: value}, pl.when(trimmed.is_not_null() & value.is_null()).then(pl.lit(R_MAID_TYPE))
        )
    if field == "maid":
        parts = trimmed.str.to_lowercase().str.extract_groups(_MAID_RE_TEXT)
        joined = pl.concat_str([parts.struct.field(str(i)) for i in range(1, 6)], separator="-")
        reason = (
            pl.when(trimmed.is_null())
            .then(pl.lit(None, dtype=pl.String))
            .when(joined.is_null())
            .then(pl.lit(R_MAID))
            .when(joined == _MAID_ZERO)
            .then(pl.lit(R_MAID_ZERO))
        )
        return _Output("", field, {field: pl.when(reason.is_null()).then(joined)}, reason)
    if field == "postal_code":
        upper = trimmed.str.to_uppercase()
        ok = upper.str.contains(POSTAL_RE_TEXT) & (upper.str.len_chars() <= 20)
        return _Output(
            "", field, {field: pl.when(ok).then(upper)}, pl.when(trimmed.is_not_null() & ~ok).then(pl.lit(R_POSTAL))
        )
    if field == "employee_count":
        value, reason = _integer_exprs(trimmed, INT32_MAX)
        return _Output("", field, {field: value.cast(pl.Int32)}, reason)
    if field == "revenue":
        value, reason = _rounded_exprs(trimmed, INT64_MAX)
        return _Output("", field, {field: value}, reason)
    value, reason = _text_exprs(trimmed, spec.max_length or CUSTOM_TEXT_MAX)
    return _Output("", field, {field: value}, reason)


def _check_mapping(df: pl.DataFrame, mapping: Mapping[str, str], custom_types: Mapping[str, str]) -> None:
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
        if type_name not in CUSTOM_TYPES:
            raise ValueError(f"unknown custom type {type_name!r} for {header!r}")


def _json_fragment(key: str, value: pl.Expr, type_name: str) -> pl.Expr:
    """`"key":<json value>` or null, so nulls are left out of the object."""
    if type_name == "text":
        # struct.json_encode escapes exactly as JSON requires; keep the value part of `{"k":"..."}`.
        encoded = pl.struct(value.alias("k")).struct.json_encode().str.slice(5)
        encoded = encoded.str.slice(0, encoded.str.len_bytes() - 1)
    elif type_name == "date":
        encoded = '"' + value.dt.to_string("%Y-%m-%d") + '"'
    elif type_name == "boolean":
        encoded = pl.when(value).then(pl.lit("true")).otherwise(pl.lit("false"))
    elif type_name == "decimal":
        encoded = pl.struct(value.alias("k")).struct.json_encode().str.slice(5)
        encoded = encoded.str.slice(0, encoded.str.len_bytes() - 1)
    else:
        encoded = value.cast(pl.String)
    return pl.when(value.is_not_null()).then(pl.lit(json.dumps(key) + ":") + encoded)


def normalize_batch(
    df: pl.DataFrame,
    mapping: Mapping[str, str],
    *,
    custom_types: Mapping[str, str],
    default_country: str = "US",
    custom_names: Mapping[str, str] | None = None,
) -> NormalizedBatch:
    """Validate and normalise one batch.

    `df`: all-String columns named by (unique) source header plus an Int64 `__row`. `mapping`: source header ->
    canonical field for the mapped columns. `custom_types`: source header -> custom type (`fields.CUSTOM_TYPES`)
    for the columns kept as custom fields; their JSON keys are `custom_names[header]`, by default
    `fields.custom_field_names(custom_types)`. Columns in neither are ignored. Empty values are null, never errors.
    """
    _check_mapping(df, mapping, custom_types)
    names = dict(custom_names) if custom_names is not None else custom_field_names(custom_types)
    outputs: list[_Output] = []
    for index, (header, field) in enumerate(mapping.items()):
        output = _field_output(field, trim_expr(pl.col(header)), default_country, str(index))
        output.header = header
        outputs.append(output)
    custom_fragments: list[pl.Expr] = []
    for index, (header, type_name) in enumerate(custom_types.items()):
        if header in mapping:
            continue
        value, reason = custom_value_expr(trim_expr(pl.col(header)), type_name)
        outputs.append(_Output(header, f"custom:{type_name}", {}, reason))
        custom_fragments.append(_json_fragment(names[header], value, type_name).alias(f"__cj_{index}"))

    exprs: list[pl.Expr] = [pl.col(ROW)]
    for index, output in enumerate(outputs):
        exprs.extend(expr.alias(name) for name, expr in output.columns.items())
        exprs.append(output.reason.cast(pl.String).alias(f"__reason_{index}"))
    if custom_fragments:
        joined = pl.concat_str(custom_fragments, separator=",", ignore_nulls=True)
        exprs.append(pl.when(joined.str.len_bytes() > 0).then("{" + joined + "}").alias("custom"))
    else:
        exprs.append(pl.lit(None, dtype=pl.String).alias("custom"))
    raw_headers = sorted({output.header for output in outputs})
    frame = df.lazy().select(*exprs, *(pl.col(h).alias(f"__raw_{i}") for i, h in enumerate(raw_headers))).collect()
    raw_column = {header: f"__raw_{i}" for i, header in enumerate(raw_headers)}

    frame = _resolve_fallbacks(frame, outputs, default_country)

    reason_columns = [f"__reason_{index}" for index in range(len(outputs))]
    error_parts = [
        frame.lazy()
        .filter(pl.col(f"__reason_{index}").is_not_null())
        .select(
            pl.col(ROW),
            pl.lit(output.header, dtype=pl.String).alias("column"),
            pl.lit(
                output.field if not output.field.startswith("custom:") else names[output.header], dtype=pl.String
            ).alias("field"),
            pl.col(raw_column[output.header]).str.slice(0, ERROR_VALUE_CHARS).alias("value"),
            pl.col(f"__reason_{index}").alias("reason"),
        )
        for index, output in enumerate(outputs)
    ]
    errors = (
        pl.concat(pl.collect_all(error_parts), how="vertical").sort(ROW, maintain_order=True)
        if error_parts
        else pl.DataFrame(schema=ERROR_SCHEMA)
    )

    ok = pl.all_horizontal([pl.col(name).is_null() for name in reason_columns]) if reason_columns else pl.lit(True)
    record_columns = [ROW]
    mapped = set(mapping.values())
    for spec in FIELDS:
        if spec.name in mapped or any(spec.name in DERIVED_FROM.get(field, ()) for field in mapped):
            record_columns.append(spec.name)
    hashes = []
    if "email" in mapped:
        hashes.append(uid2_hash_expr(pl.col("email_normalized")).alias("email_sha256"))
    if "phone" in mapped:
        hashes.append(uid2_hash_expr(pl.col("phone_e164")).alias("phone_sha256"))
    records = (
        frame.lazy()
        .filter(ok)
        .with_columns(hashes)
        .select(
            *(pl.col(name).cast(FIELDS_BY_NAME[name].dtype) if name != ROW else pl.col(ROW) for name in record_columns),
            pl.col("custom"),
        )
        .collect()
    )
    return NormalizedBatch(records=records, errors=errors.cast(ERROR_SCHEMA))  # type: ignore[arg-type]


def _resolve_fallbacks(frame: pl.DataFrame, outputs: list[_Output], default_country: str) -> pl.DataFrame:
    """Run the values the vectorised pass could not place (phones outside the NANP fast path, IPv6) through the
    scalar functions, once per unique value, and set the final value and reason columns."""
    updates: list[pl.Expr] = []
    for index, output in enumerate(outputs):
        if output.field not in ("phone", "ip"):
            continue
        tag = next(name for name in output.columns if name.startswith("__fb_")).removeprefix("__fb_")
        residual = frame.filter(pl.col(f"__fb_{tag}")).get_column(f"__t_{tag}").unique()
        if output.field == "phone":
            resolved = {value: normalize_phone(value, default_country) for value in residual.to_list()}
            target, reason_text = "phone_e164", R_PHONE
        else:
            resolved = {value: normalize_ip(value) for value in residual.to_list()}
            target, reason_text = "ip", R_IP
        slow = (
            pl.col(f"__t_{tag}").replace_strict(resolved, default=None, return_dtype=pl.String)
            if resolved
            else pl.lit(None, dtype=pl.String)
        )
        final = pl.when(pl.col(f"__fb_{tag}")).then(slow).otherwise(pl.col(target))
        updates.append(final.alias(target))
        updates.append(
            pl.when(pl.col(f"__t_{tag}").is_not_null() & final.is_null())
            .then(pl.lit(reason_text))
            .alias(f"__reason_{index}")
        )
    return frame.with_columns(updates) if updates else frame
