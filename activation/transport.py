"""Moving finished files: staging to the org's storage (S3 through django-storages when a bucket is set)
and pushing to SFTP (asyncssh) or a destination's own S3 bucket (boto3).

SFTP, exactly once per file (trust items 24-25): the file goes up as `<name>.part`, its remote size is checked
against the local one, then it is renamed to `<name>` - once. A file already present under its final name with
the right size is not sent again (a worker killed after the rename). A connection cut mid-file is retried from
the start of the `.part`. The server's host key must equal the pinned one: unknown or changed keys are refused.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from dataclasses import dataclass
from typing import Any

import asyncssh
from django.conf import settings

from activation.exports import FileInfo
from p360.core.faults import fault_point

logger = logging.getLogger(__name__)


class TransportError(Exception):
    """The push failed; the message is safe to show (no credentials)."""


class HostKeyRefused(TransportError):
    pass


# --- staging ---------------------------------------------------------------------------------------------
def stage(files: list[FileInfo], prefix: str) -> list[str]:
    """Copy the files to `<prefix>/<name>` in the org's storage (replacing a previous attempt's copy)."""
    from p360.core.uploads.storage import org_storage

    storage = org_storage()
    keys = []
    for info in files:
        key = f"{prefix}/{info.name}"
        if storage.exists(key):
            storage.delete(key)
        with info.path.open("rb") as fh:
            saved = storage.save(key, fh)
        keys.append(saved)
    return keys


# --- SFTP ------------------------------------------------------------------------------------------------
@dataclass
class SftpTarget:
    host: str
    port: int
    username: str
    remote_dir: str
    host_key: str
    password: str = ""
    private_key: str = ""

    def __repr__(self) -> str:  # never print secrets
        return f"SftpTarget({self.username}@{self.host}:{self.port}{self.remote_dir})"


def _connect_options(target: SftpTarget) -> dict[str, Any]:
    try:
        pinned = asyncssh.import_public_key(target.host_key.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise HostKeyRefused(f"the pinned host key is not an OpenSSH public key: {exc}") from None
    options: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "username": target.username,
        "known_hosts": ([pinned], [], []),  # only this key is trusted
        "connect_timeout": 30,
        "login_timeout": 30,
        "keepalive_interval": 15,
        "agent_path": None,
        "client_keys": None,
        "preferred_auth": ["publickey", "password"] if target.private_key else ["password"],
    }
    if target.private_key:
        options["client_keys"] = [asyncssh.import_private_key(target.private_key)]
    if target.password:
        options["password"] = target.password
    return options


async def _push_one(sftp: Any, info: FileInfo, remote_dir: str) -> str:
    final = posixpath.join(remote_dir, info.name)
    part = final + ".part"
    if await sftp.exists(final):
        size = (await sftp.stat(final)).size
        if size == info.bytes:
            return "already-present"
        raise TransportError(f"{info.name} already exists on the server with another size ({size} bytes)")
    await sftp.put(str(info.path), part)
    fault_point("activation.sftp.after_part")
    size = (await sftp.stat(part)).size
    if size != info.bytes:
        raise TransportError(f"{info.name}: the server holds {size} bytes, expected {info.bytes}")
    # Plain SFTP rename refuses to replace an existing file: a second rename can never overwrite the first.
    await sftp.rename(part, final)
    fault_point("activation.sftp.after_rename")
    return "sent"


async def _push(target: SftpTarget, files: list[FileInfo]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    outcome: dict[str, str] = {}
    async with asyncssh.connect(**_connect_options(target)) as conn, conn.start_sftp_client() as sftp:
        for info in files:
            outcome[info.name] = await _push_one(sftp, info, target.remote_dir)
        listing = []
        for entry in await sftp.readdir(target.remote_dir):
            name = entry.filename
            if name in (".", ".."):
                continue
            listing.append({"name": name, "bytes": entry.attrs.size})
    return outcome, sorted(listing, key=lambda e: e["name"])


def push_sftp(target: SftpTarget, files: list[FileInfo], *, attempts: int | None = None) -> dict[str, Any]:
    """Push every file exactly once; returns {"files": {name: sent|already-present}, "listing": [...], "tries"}."""
    tries = max(1, attempts or settings.P360_DELIVERY_SFTP_RETRIES)
    last: Exception | None = None
    for attempt in range(1, tries + 1):
        try:
            outcome, listing = asyncio.run(_push(target, files))
            return {"files": outcome, "listing": listing, "tries": attempt}
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyRefused(
                f"the SFTP server {target.host}:{target.port} presented a host key that is not the pinned one ({exc})"
            ) from None
        except asyncssh.PermissionDenied:
            raise TransportError(f"the SFTP server {target.host}:{target.port} refused the login") from None
        except TransportError:
            raise
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            last = exc
            logger.warning("sftp push to %r failed (attempt %s/%s): %s", target, attempt, tries, type(exc).__name__)
    raise TransportError(f"the SFTP push failed after {tries} attempt(s): {type(last).__name__}: {last}")


# --- a destination's own S3 bucket --------------------------------------------------------------------
def push_s3(
    *, bucket: str, prefix: str, endpoint_url: str, access_key_id: str, secret_access_key: str, files: list[FileInfo]
) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "config": Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
        "region_name": "us-east-1",
    }
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if access_key_id:
        kwargs["aws_access_key_id"] = access_key_id
        kwargs["aws_secret_access_key"] = secret_access_key
    client = boto3.client("s3", **kwargs)
    outcome = {}
    base = prefix.strip("/")
    for info in files:
        key = f"{base}/{info.name}" if base else info.name
        client.upload_file(str(info.path), bucket, key)  # an object appears whole or not at all
        head = client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] != info.bytes:
            raise TransportError(f"{key}: the bucket holds {head['ContentLength']} bytes, expected {info.bytes}")
        outcome[info.name] = "sent"
    listing = client.list_objects_v2(Bucket=bucket, Prefix=f"{base}/" if base else "").get("Contents", [])
    return {
        "files": outcome,
        "listing": [{"name": o["Key"], "bytes": o["Size"]} for o in listing],
        "tries": 1,
    }
