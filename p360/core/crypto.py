"""Encryption of stored credentials (Vibe API keys): Fernet with a key from the environment.

`P360_FIELD_ENCRYPTION_KEY` (a Fernet key) when set; otherwise derived from SECRET_KEY, so a
database dump alone never reveals a key. Rotating SECRET_KEY without setting the field key makes
stored keys unreadable (they must be entered again); the error says so.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class CredentialError(Exception):
    pass


def _fernet() -> Fernet:
    key = settings.P360_FIELD_ENCRYPTION_KEY
    if not key:
        key = base64.urlsafe_b64encode(hashlib.sha256(f"p360-fields:{settings.SECRET_KEY}".encode()).digest()).decode()
    return Fernet(key.encode())


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialError(
            "the stored credential cannot be decrypted (the encryption key changed); enter it again"
        ) from exc


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
