"""The API's JSON parser: refuses what would crash the decoder or the database, once for every endpoint.

- nesting deeper than MAX_JSON_DEPTH (a 10,000-level logic tree made `json.loads` raise RecursionError:
  a 500): measured by an iterative scan *before* parsing;
- a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE: 413;
- text containing NUL (`\\u0000`), which PostgreSQL text columns cannot store: 400;
- text containing a lone surrogate (`"\\ud800"`: JSON can spell it, UTF-8 cannot encode it, so saving or
  echoing it raised UnicodeEncodeError: a 500 found by session 11's junk sweep): 400;
- `NaN`, `Infinity`, `-Infinity` and numbers beyond a double's range (`1e309`): not JSON (RFC 8259 has no
  non-finite numbers), though Python's decoder reads them as float('nan')/float('inf'): 400 for the whole body
  (session 12; every field validated them, but a body that is not strict JSON is not half-read).
Each is the JSON error body (p360.core.api_errors) with code `parse_error` (the segments API words it
`invalid_json`), `payload_too_large`, `nul_character` or `invalid_text`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import Any

import numpy as np

try:  # optional: ~5x faster decoding of large bodies (the events API's 10,000-event batches)
    import orjson
except ImportError:  # pragma: no cover - the standard library is the reference
    orjson = None  # type: ignore[assignment]

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 100  # the builder's own limit (32 levels) answers first with its clearer message
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")
_ALL_BUT_QUOTES_AND_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')
# Integers orjson would turn into floats (beyond 64 bits): such bodies are decoded by the standard library.
# Digits -> b"1", every other byte -> b" ": a run of 19 ones is a run of 19 digits, an integer orjson would read as a
# float. Two C byte operations instead of a `\d{19,}` regex search: ~1 ms against ~10 ms on a 10,000-event body.
_DIGITS_AS_ONES = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"1" * 19


def has_long_integer(raw: bytes) -> bool:
    return _LONG_RUN in raw.translate(_DIGITS_AS_ONES)


_INNERMOST = re.compile(rb"\[\]|\{\}")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays/objects, without recursion (brackets inside strings ignored): the largest
    running count of opening minus closing brackets outside strings (negative for a body that only closes).

    Byte-level C operations only (a regex over a 30 MB body cost ~0.2 s per 10,000 events): drop escaped
    backslashes and quotes, keep only quotes and brackets, then one numpy pass: a bracket is outside every string
    when an even number of quotes precede it (session 13; the peeling of innermost pairs it replaces cost ~4 ms
    on a 10,000-event body, this ~1 ms).
    """
    if not FAST_DEPTH:
        return _json_depth_peeling(raw)
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = raw.translate(None, _ALL_BUT_QUOTES_AND_BRACKETS)
    if not kept:
        return 0
    codes = np.frombuffer(kept, dtype=np.uint8)
    steps = _BRACKET_STEP.take(codes)
    if b'"' in kept:
        inside = np.bitwise_xor.accumulate((codes == 0x22).view(np.uint8))  # 1 after an odd number of quotes
        counted = (inside == 0) & (steps != 0)
        if not counted.all():
            steps = steps[counted]
    if not len(steps):
        return 0
    return int(np.cumsum(steps, dtype=np.int64).max())


FAST_DEPTH = True  # False: the previous scan (bench.profile_segments' A/B)
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[list(b"[{")] = 1
_BRACKET_STEP[list(b"]}")] = -1


def _json_depth_peeling(raw: bytes) -> int:
    """The scan before session 13 (peeling innermost pairs with a regex), kept for the A/B."""
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Two adjacent quotes enclose nothing (an empty string, or the end of one string and the start of the next,
    # with no bracket between): dropping them keeps every bracket on its side of every string. Bodies with no
    # bracket inside a string are left with no quote at all, and skip the split (one bytes object per string:
    # ~10 ms on a 10,000-event body).
    kept = raw.translate(None, _ALL_BUT_QUOTES_AND_BRACKETS).replace(b'""', b"")
    brackets = b"".join(kept.split(b'"')[::2]) if b'"' in kept else kept
    if not brackets:
        return 0
    depth = 0
    inner = brackets
    while inner and depth <= MAX_JSON_DEPTH:  # peel innermost pairs: shallow bodies take a few passes
        peeled = _INNERMOST.sub(b"", inner)
        if len(peeled) == len(inner):
            break
        inner, depth = peeled, depth + 1
    if not inner:
        return depth
    return max(accumulate(1 if byte in b"[{" else -1 for byte in brackets))  # deep or unbalanced: exact count


class NonFiniteNumber(ValueError):
    """A number JSON cannot hold: `NaN`, `Infinity`, `-Infinity`, or a literal beyond a double's range."""


def _refuse_constant(name: str) -> float:
    raise NonFiniteNumber(f"{name} is not a JSON number (numbers must be finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # float() never gives NaN from a JSON number literal; only overflow is left
        shown = text if len(text) <= 40 else f"{text[:37]}..."
        raise NonFiniteNumber(f"the number {shown} is out of range (numbers must be finite, at most ~1.8e308)")
    return value


def loads(raw: bytes, *, finite: bool = False) -> tuple[Any, bool]:
    """Decode JSON; returns (data, strict) where strict says orjson decoded it.

    orjson refuses what the standard library lets through (NaN, 1e400 as infinity, lone surrogates) and
    reads integers beyond 64 bits as floats; every such body is decoded by the standard library instead, so
    the result is always the standard library's. `strict` tells callers the data holds no NaN/infinity, no
    lone surrogate and no integer beyond 64 bits. `finite` makes the standard library refuse NaN and infinity
    too (NonFiniteNumber, a ValueError), as orjson does: what the API's parser asks for.
    """
    if orjson is not None and not has_long_integer(raw):
        try:
            return orjson.loads(raw), True
        except orjson.JSONDecodeError:
            pass  # the standard library decides (and words the error)
    text = raw.decode(settings.DEFAULT_CHARSET) if raw else "null"
    if finite:  # the hooks run per float literal / per constant, only on this (rare) fallback path
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float), False
    return json.loads(text), False


def may_hold_nul(raw: bytes) -> bool:
    """False when the body cannot hold a NUL character (JSON spells it only as an escape)."""
    return b"\\u0000" in raw


# A surrogate escape (\ud800-\udfff). A valid pair decodes to one character; what is left after decoding is lone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def may_hold_surrogate(raw: bytes) -> bool:
    """False when the body cannot hold a lone surrogate (JSON spells one only as an escape)."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def find_nul(data: Any, path: str = "") -> str | None:
    """The path of the first string (value or key) holding a NUL character, iteratively."""
    return find_text(data, lambda text: "\x00" in text, path)


def find_surrogate(data: Any, path: str = "") -> str | None:
    """The path of the first string (value or key) holding a lone surrogate, iteratively."""
    return find_text(data, lambda text: _SURROGATE.search(text) is not None, path)


def find_text(data: Any, bad: Callable[[str], bool], path: str = "") -> str | None:
    """The path of the first string (value or key) for which `bad` holds, iteratively."""
    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if bad(value):
                return where or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                if bad(key):
                    return f"{where}.{key!r}" if where else repr(key)
                stack.append((item, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(value))
    return None


def nul_error(where: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({where: ["must not contain the NUL character (\\u0000)"]}, code="nul_character")


def surrogate_error(where: str) -> exceptions.ValidationError:
    return exceptions.ValidationError(
        {where: ["must not contain a lone surrogate (\\ud800-\\udfff): it is not text"]}, code="invalid_text"
    )


class SafeJSONParser(JSONParser):
    """`max_bytes` (None: DATA_UPLOAD_MAX_MEMORY_SIZE) and `refuse_nul` let an endpoint with larger bodies, or one
    that judges NUL and lone surrogates per item (the events API), keep every other rule."""

    max_bytes: int | None = None
    refuse_nul = True

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = self.max_bytes if self.max_bytes is not None else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None and limit is not None else (stream.read() if stream else b"")
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
        depth = json_depth(raw)
        if depth > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"JSON nested too deep ({depth:,} levels; at most {MAX_JSON_DEPTH})")
        try:
            data, strict = loads(raw, finite=True)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        if isinstance(parser_context, dict):  # DRF's request keeps this dict: views may read it
            parser_context["json_strict"] = strict
            parser_context["json_may_hold_nul"] = may_hold_nul(raw)
        if self.refuse_nul and may_hold_nul(raw):
            where = find_nul(data)
            if where is not None:
                raise nul_error(where)
        if self.refuse_nul and not strict and may_hold_surrogate(raw):
            where = find_surrogate(data)
            if where is not None:
                raise surrogate_error(where)
        return data
