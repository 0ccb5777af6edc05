"""The API's JSON parser: refuses what would crash the decoder or the database, once for every endpoint.

- nesting deeper than MAX_JSON_DEPTH (a 10,000-level logic tree made `json.loads` raise RecursionError:
  a 500): measured by an iterative scan *before* parsing;
- a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE: 413;
- text containing NUL (`\\u0000`), which PostgreSQL text columns cannot store: 400.
Each is the JSON error body (p360.core.api_errors) with code `invalid_json`, `payload_too_large` or `nul_character`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 100  # the builder's own limit (32 levels) answers first with its clearer message
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays/objects, without recursion (brackets inside strings ignored)."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b'""', raw))
    if not brackets:
        return 0
    return max(accumulate(1 if byte in b"[{" else -1 for byte in brackets))


def find_nul(data: Any, path: str = "") -> str | None:
    """The path of the first string (value or key) holding a NUL character, iteratively."""
    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return where or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return f"{where}.{key!r}" if where else repr(key)
                stack.append((item, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(value))
    return None


def nul_error(where: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({where: ["must not contain the NUL character (\\u0000)"]}, code="nul_character")


class SafeJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None and limit is not None else (stream.read() if stream else b"")
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
        depth = json_depth(raw)
        if depth > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"JSON nested too deep ({depth:,} levels; at most {MAX_JSON_DEPTH})")
        try:
            data = json.loads(raw.decode(settings.DEFAULT_CHARSET) if raw else "null")
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        where = find_nul(data)
        if where is not None:
            raise nul_error(where)
        return data
