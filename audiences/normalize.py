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

from audiences.fields import CUSTOM_TYPES, FIELDS, FIELDS_BY_NAME, custom_field_names
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
    plan.add(1, f"{p}fb", t.str.contains(r"[^\x00-\x7f]"))
    syntax = plan.add(2, f"{p}syntax", low.str.contains(_EMAIL_RE_TEXT) & (low.str.len_chars() <= EMAIL_MAX))
    gmail = plan.add(2, f"{p}gmail", low.str.ends_with("@gmail.com"))
    # Only gmail rows carry a value into the local-part steps (string operations skip nulls).
    local = pl.when(gmail).then(low).str.replace(r"[+@][\s\S]*$", "").str.replace_all(".", "", literal=True)
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
    compact = plan.add(1, f"{p}compact", t.str.replace_all(_PHONE_SEPARATORS, ""))
    prefix = r"(?:\+1|1)?" if default_country.upper() in _NANP_FAST_REGIONS else r"\+1"
    # A match test (no capture groups: the fast regex engine) and the last ten characters.
    nanp = compact.str.contains(rf"^{prefix}[2-9][0-9]{{2}}[2-9][0-9]{{6}}$")
    national = plan.add(2, f"{p}nat", pl.when(nanp).then(compact.str.slice(-10)))
    fast = plan.add(3, f"{p}e164", pl.when(t.str.len_chars() <= PHONE_MAX).then("+1" + national))
    plan.add(4, f"{p}fb", t.is_not_null() & fast.is_null())
    plan.fallbacks.append(_Fallback(f"{p}fb", f"{p}t", f"{p}e164", lambda v: normalize_phone(v, default_country)))
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


def _plan_domain(plan: _Plan, p: str, t: pl.Expr, reason: str) -> dict[str, str]:
    host = t.str.to_lowercase().str.replace(_SCHEME_RE_TEXT, "").str.replace(_PATH_RE_TEXT, "")
    host = plan.add(1, f"{p}host", host.str.replace(_USERINFO_RE_TEXT, "").str.strip_prefix("www."))
    host = plan.add(2, f"{p}host2", host.str.replace(_PORT_RE_TEXT, "").str.strip_chars_end("."))
    valid = plan.add(3, f"{p}ok", (host.str.len_chars() <= DOMAIN_MAX) & host.str.contains(_DOMAIN_RE_TEXT))
    plan.add(4, reason, _reason(t.is_not_null() & ~valid, R_DOMAIN))
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
        return {field: _plan_lookup(plan, p, t, reason, key, COUNTRY_TABLE, R_COUNTRY)}
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
        encoded = encoded.str.slice(5, encoded.str.len_bytes() - 6)
    elif type_name == "date":
        encoded = '"' + value.dt.to_string("%Y-%m-%d") + '"'
    elif type_name == "boolean":
        encoded = pl.when(value).then(pl.lit("true")).otherwise(pl.lit("false"))
    else:
        encoded = value.cast(pl.String)
    return pl.when(value.is_not_null()).then(pl.lit(json.dumps(key) + ":") + encoded)


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
) -> NormalizedBatch:
    """Validate and normalise one batch.

    `df`: all-String columns named by (unique) source header plus an Int64 `__row`. `mapping`: source header ->
    canonical field for the mapped columns. `custom_types`: source header -> custom type (`fields.CUSTOM_TYPES`)
    for the columns kept as custom fields; their JSON keys are `custom_names[header]`, by default
    `fields.custom_field_names(custom_types)`. Columns in neither are ignored. Empty and whitespace-only values
    are null, never errors; a row with any error is left out of `records` and reported in `errors`.
    """
    _check_arguments(df, mapping, custom_types)
    names = dict(custom_names) if custom_names is not None else custom_field_names(custom_types)
    plan = _Plan()
    outputs: dict[str, str] = {}  # record column -> plan column
    sources: list[tuple[str, str, str]] = []  # (header, field label for errors, reason column)
    # The plan works on renamed copies (`__m0_raw`, ...), so no source header can collide with its columns.
    raw_columns = [pl.col(ROW)]
    raw_columns += [pl.col(header).alias(f"__m{index}_raw") for index, header in enumerate(mapping)]
    raw_columns += [pl.col(header).alias(f"__c{index}_raw") for index, header in enumerate(custom_types)]
    for index, (header, field) in enumerate(mapping.items()):
        p, reason = f"__m{index}_", f"__m{index}_reason"
        plan.add(0, f"{p}t", trim_expr(pl.col(f"{p}raw")))
        outputs.update(_plan_field(plan, field, p, reason, default_country))
        sources.append((header, field, reason))
    custom_columns: list[tuple[str, str, str]] = []  # (json key, type, value column)
    for index, (header, type_name) in enumerate(custom_types.items()):
        p, reason = f"__c{index}_", f"__c{index}_reason"
        plan.add(0, f"{p}t", trim_expr(pl.col(f"{p}raw")))
        custom_columns.append((names[header], type_name, _plan_custom(plan, type_name, p, reason)))
        sources.append((header, names[header], reason))

    frame = plan.apply(df.lazy().select(raw_columns)).collect()
    frame = _run_fallbacks(frame, plan)

    reason_columns = [reason for _, _, reason in sources]
    for column in reason_columns:
        if column not in frame.columns:  # fields without any possible error (none today; keeps the shape uniform)
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    errors = _collect_errors(frame, sources)

    ok = pl.all_horizontal([pl.col(c).is_null() for c in reason_columns]) if reason_columns else pl.lit(True)
    good = frame.lazy().filter(ok)
    selected: list[pl.Expr] = [pl.col(ROW)]
    for spec in FIELDS:
        source = outputs.get(spec.name)
        if spec.name in ("email_sha256", "phone_sha256"):
            base = outputs.get(
                spec.name.replace("_sha256", "_normalized" if spec.name.startswith("email") else "_e164")
            )
            if base is not None:
                selected.append(uid2_hash_expr(pl.col(base)).alias(spec.name))
        elif source is not None:
            selected.append(pl.col(source).cast(spec.dtype).alias(spec.name))
    if custom_columns:
        fragments = [_json_fragment(key, pl.col(column), type_name) for key, type_name, column in custom_columns]
        joined = pl.concat_str(fragments, separator=",", ignore_nulls=True)
        selected.append(pl.when(joined.str.len_bytes() > 0).then("{" + joined + "}").alias("custom"))
    else:
        selected.append(pl.lit(None, dtype=pl.String).alias("custom"))
    records = good.select(selected).collect()
    return NormalizedBatch(records=records, errors=errors)


def _run_fallbacks(frame: pl.DataFrame, plan: _Plan) -> pl.DataFrame:
    """Values the vectorised pass could not place go through the scalar function, once per unique value; then
    the reasons that depend on them are set."""
    updates: list[pl.Expr] = []
    for fallback in plan.fallbacks:
        residual = frame.filter(pl.col(fallback.flag).fill_null(False)).get_column(fallback.source).unique()
        if residual.len() == 0:
            continue
        resolved = {value: fallback.function(value) for value in residual.to_list() if value is not None}
        slow = pl.col(fallback.source).replace_strict(resolved, default=None, return_dtype=pl.String)
        updates.append(
            pl.when(pl.col(fallback.flag)).then(slow).otherwise(pl.col(fallback.target)).alias(fallback.target)
        )
    if updates:
        frame = frame.with_columns(updates)
    late = [
        _reason(pl.col(source).is_not_null() & pl.col(target).is_null(), text).alias(reason)
        for reason, source, target, text in plan.late_reasons
    ]
    return frame.with_columns(late) if late else frame


def _collect_errors(frame: pl.DataFrame, sources: list[tuple[str, str, str]]) -> pl.DataFrame:
    """One row per failing value, with the raw value from the plan's copy of the source column."""
    parts = [
        frame.lazy()
        .filter(pl.col(reason).is_not_null())
        .select(
            pl.col(ROW),
            pl.lit(header, dtype=pl.String).alias("column"),
            pl.lit(field, dtype=pl.String).alias("field"),
            pl.col(reason.removesuffix("reason") + "raw").str.slice(0, ERROR_VALUE_CHARS).alias("value"),
            pl.col(reason).cast(pl.String).alias("reason"),
        )
        for header, field, reason in sources
    ]
    if not parts:
        return pl.DataFrame(schema=ERROR_SCHEMA)
    return pl.concat(pl.collect_all(parts), how="vertical").sort(ROW, maintain_order=True)
