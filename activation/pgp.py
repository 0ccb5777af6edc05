"""PGP encryption of delivery files for LiveRamp (reference 3.1: their public key and an encryption subkey id;
the file is named correctly before it is encrypted, `<name>.gpg`, and LiveRamp decrypts it on arrival).

python-gnupg drives the system `gpg`. Each call works in its own temporary GNUPGHOME holding only the
destination's public key: no keyring is shared between organisations or deliveries, nothing outlives the call,
and `--no-autostart` keeps gpg from starting an agent (public-key operations never need one).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gnupg

from activation.exports import FileInfo

SUFFIX = ".gpg"
KEYID_RE = re.compile(r"^(0x)?([0-9A-Fa-f]{16}|[0-9A-Fa-f]{40})$")


class PgpError(Exception):
    """The key cannot be used or gpg failed; the message is for the user (a public key is no secret)."""


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    encryption_subkeys: tuple[str, ...]  # long key ids (16 hex digits) of the subkeys that may encrypt


@contextmanager
def _keyring(armored: str) -> Iterator[tuple[gnupg.GPG, str]]:
    """A throw-away GNUPGHOME holding only `armored`; yields (gpg, primary fingerprint)."""
    home = tempfile.mkdtemp(prefix="p360-gpg-")
    try:
        try:
            gpg = gnupg.GPG(gnupghome=home, options=["--no-autostart"])
        except (OSError, ValueError) as exc:  # no gpg binary on this host
            raise PgpError(f"gpg is not available: {exc}") from None
        if "PRIVATE KEY BLOCK" in armored:  # refused before gpg sees it: a secret has no place in this keyring
            raise PgpError("that is a private key: paste LiveRamp's public key only")
        result = gpg.import_keys(armored.strip())
        if not result.fingerprints:
            raise PgpError("the PGP key could not be read (paste the ASCII-armoured public key block)")
        if gpg.list_keys(secret=True):
            raise PgpError("that is a private key: paste LiveRamp's public key only")
        if len(set(result.fingerprints)) != 1:
            raise PgpError("paste exactly one PGP public key")
        yield gpg, result.fingerprints[0]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def inspect_key(armored: str) -> KeyInfo:
    """Read a public key: its fingerprint and the subkeys usable for encryption (refuses anything else)."""
    with _keyring(armored) as (gpg, fingerprint):
        (key,) = gpg.list_keys()
        subkeys = tuple(sub[0].upper() for sub in key.get("subkeys", []) if "e" in sub[1])
        if not subkeys and "e" not in key.get("cap", "").lower():
            raise PgpError("the PGP key has no encryption subkey")
        return KeyInfo(fingerprint=fingerprint.upper(), encryption_subkeys=subkeys)


def check_subkey(info: KeyInfo, subkey_id: str) -> str:
    """The subkey id normalised (16 upper-case hex digits, no 0x), or PgpError when the key has no such
    encryption subkey. Empty stays empty (gpg picks the key's current encryption subkey)."""
    subkey_id = subkey_id.strip().replace(" ", "")
    if not subkey_id:
        return ""
    match = KEYID_RE.match(subkey_id)
    if match is None:
        raise PgpError("the PGP subkey id is 16 hexadecimal digits (or a 40-digit fingerprint)")
    long_id = match.group(2).upper()[-16:]
    if long_id not in info.encryption_subkeys:
        known = ", ".join(info.encryption_subkeys) or "none"
        raise PgpError(f"the PGP key has no encryption subkey {long_id} (its encryption subkeys: {known})")
    return long_id


def encrypt_files(files: list[FileInfo], *, armored: str, subkey_id: str, out_dir: Path) -> list[FileInfo]:
    """Encrypt each finished file to `<name>.gpg` in `out_dir` (binary OpenPGP, no gpg compression: the gzip
    option compresses, and gpg's zlib would cost a GB file minutes). Returns the encrypted files with the
    SHA-256 and size of the encrypted bytes, which is what the remote holds and what the push verifies."""
    out: list[FileInfo] = []
    with _keyring(armored) as (gpg, fingerprint):
        # `<id>!` makes gpg use exactly that subkey rather than the one it would prefer
        recipient = f"{subkey_id}!" if subkey_id else fingerprint
        for info in files:
            target = out_dir / f"{info.name}{SUFFIX}"
            with info.path.open("rb") as fh:
                result = gpg.encrypt_file(fh, [recipient], armor=False, always_trust=True, output=str(target),
                                          extra_args=["--compress-algo", "none"])  # fmt: skip
            if not result.ok:
                raise PgpError(f"gpg could not encrypt {info.name}: {result.status or 'failed'}")
            out.append(FileInfo(target.name, info.rows, _sha256(target), target.stat().st_size, target))
    return out


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
