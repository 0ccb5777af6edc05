"""Activation fixtures: a local UID2 operator (session), settings pointing at it, and audiences with records."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.activation.uid2_operator import API_KEY, SECRET, Uid2Operator


def h(value: str) -> str:
    return base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()


@pytest.fixture(scope="session")
def uid2_operator() -> Iterator[Uid2Operator]:
    operator = Uid2Operator().start()
    yield operator
    operator.stop()


@pytest.fixture
def operator(uid2_operator: Uid2Operator, settings: Any) -> Uid2Operator:
    uid2_operator.reset()
    settings.P360_UID2_BASE_URL = uid2_operator.base_url
    settings.P360_UID2_API_KEY = API_KEY
    settings.P360_UID2_SECRET_KEY = SECRET
    settings.P360_UID2_BACKOFF_BASE = 0.01
    settings.P360_UID2_BACKOFF_CAP = 0.05
    return uid2_operator


@pytest.fixture(autouse=True)
def _activation_settings(settings: Any, tmp_path_factory: Any) -> None:
    location = tmp_path_factory.mktemp("media")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    settings.P360_DELIVERY_ALERT_EMAILS = ["ops@p360.test"]


def person(i: int, **extra: Any) -> dict[str, Any]:
    """A record with email (+ hash), phone (+ hash), a MAID and an IP; `extra` overrides fields."""
    email = f"person{i}@example.com"
    phone = f"+1555000{i:04d}"
    row: dict[str, Any] = {
        "email": email,
        "email_normalized": email,
        "email_sha256": h(email),
        "phone": phone,
        "phone_e164": phone,
        "phone_sha256": h(phone),
        "first_name": f"First{i}",
        "last_name": f"Last{i}",
        "maid": f"{i:08X}-0134-4EEC-B4AF-65855133B008" if i % 2 else f"{i:08x}-aaaa-4bbb-8ccc-65855133b008",
        "maid_type": "IDFA" if i % 2 else "GAID",
        "ip": f"10.0.{i // 250}.{i % 250 + 1}",
    }
    row.update(extra)
    return row
