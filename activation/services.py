"""Writes of the activation app: delivery configuration, destinations (credentials encrypted), UID2
mapping runs, deliveries and ICP seeds. Pages, API, admin, commands and tasks only call these."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import transaction

from activation.models import Cadence, DeliveryConfig, Destination, DestinationKind, LiveRampRegion, PushMode
from p360.core.audit.services import record
from p360.core.crypto import decrypt, encrypt
from p360.core.jobs.dispatch import org_task
from tenants.selectors import current_org
from tenants.services import ServiceError

if TYPE_CHECKING:
    from tenants.models import User

LOOKBACKS = (30, 60, 90, None)  # document 002: 30/60/90 days or never expire
MAX_TTL_DAYS = 180
CREDENTIAL_FIELDS: dict[str, tuple[str, ...]] = {
    DestinationKind.LIVERAMP: ("password", "private_key"),
    DestinationKind.SFTP: ("password", "private_key"),
    DestinationKind.S3: ("access_key_id", "secret_access_key"),
    DestinationKind.TTD: ("auth_token", "secret_key"),
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,79}$")
# LiveRamp's SFTP endpoints (reference 3.1): one host, a port per region; EU and AU take SSH keys only
LIVERAMP_HOST = "files.liveramp.com"
LIVERAMP_UPLOADS = "/uploads"
LIVERAMP_PORTS: dict[str, int] = {LiveRampRegion.US: 22, LiveRampRegion.AU: 2222, LiveRampRegion.EU: 4222}
KEY_ONLY_REGIONS = frozenset({LiveRampRegion.EU, LiveRampRegion.AU})
REGION_NAMES: dict[str, str] = {LiveRampRegion.US: "US", LiveRampRegion.EU: "EU", LiveRampRegion.AU: "AU"}


# --- configuration -------------------------------------------------------------------------------------
def config() -> DeliveryConfig:
    """The org's delivery configuration (created with the defaults on first read)."""
    obj = DeliveryConfig.objects.order_by("pk").first()
    return obj if obj is not None else DeliveryConfig.objects.create()


def _config_snapshot(c: DeliveryConfig) -> dict[str, Any]:
    return {
        "enabled": c.enabled,
        "cadence": c.cadence,
        "lookback_days": c.lookback_days,
        "push_mode": c.push_mode,
        "shrink_alert_share": str(c.shrink_alert_share),
        "ttd_ttl_days": c.ttd_ttl_days,
        "ttd_base_bid_cpm": str(c.ttd_base_bid_cpm),
    }


@org_task
@transaction.atomic
def config_update(*, actor: User | None, **changes: Any) -> DeliveryConfig:
    c = config()
    before = _config_snapshot(c)
    for key, value in changes.items():
        if key == "enabled":
            c.enabled = bool(value)
        elif key == "cadence":
            if value not in Cadence.values:
                raise ServiceError(f"cadence must be one of {', '.join(Cadence.values)}")
            c.cadence = value
        elif key == "lookback_days":
            value = None if value in (None, "", "never", 0) else _int(value, "lookback_days")
            if value not in LOOKBACKS:
                raise ServiceError("lookback_days must be 30, 60, 90 or null (never expire)")
            c.lookback_days = value
        elif key == "push_mode":
            if value not in PushMode.values:
                raise ServiceError(f"push_mode must be one of {', '.join(PushMode.values)}")
            c.push_mode = value
        elif key == "shrink_alert_share":
            share = _decimal(value, key)
            if not Decimal(0) < share <= Decimal(1):
                raise ServiceError("shrink_alert_share must be between 0 and 1")
            c.shrink_alert_share = share
        elif key == "ttd_ttl_days":
            days = _int(value, key)
            if not 1 <= days <= MAX_TTL_DAYS:
                raise ServiceError(f"ttd_ttl_days must be between 1 and {MAX_TTL_DAYS} (TTD's maximum)")
            c.ttd_ttl_days = days
        elif key == "ttd_base_bid_cpm":
            cpm = _decimal(value, key)
            if cpm <= 0 or cpm > 1000:
                raise ServiceError("ttd_base_bid_cpm must be a positive amount")
            c.ttd_base_bid_cpm = cpm
        elif key == "alert_emails":
            c.alert_emails = ",".join(e.strip() for e in str(value).split(",") if e.strip())[:500]
        else:
            raise ServiceError(f"unknown setting {key!r}")
    c.save()
    record(action="activation.config_updated", actor=actor, org=current_org(), entity=c, before=before,
           after=_config_snapshot(c))  # fmt: skip
    return c


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ServiceError(f"{name} must be a whole number")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ServiceError(f"{name} must be a whole number") from None


def _decimal(value: Any, name: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ServiceError(f"{name} must be a number") from None
    if not result.is_finite():
        raise ServiceError(f"{name} must be a number")
    return result


# --- destinations ----------------------------------------------------------------------------------------
def destination_snapshot(d: Destination) -> dict[str, Any]:
    """What may be shown or logged about a destination: never its credentials."""
    return {
        "name": d.name,
        "kind": d.kind,
        "enabled": d.enabled,
        "host": d.host,
        "port": d.port,
        "username": d.username,
        "remote_dir": d.remote_dir,
        "host_key_pinned": bool(d.host_key),
        "bucket": d.bucket,
        "prefix": d.prefix,
        "endpoint_url": d.endpoint_url,
        "advertiser_id": d.advertiser_id,
        "compression": d.compression,
        "region": d.region if d.kind == DestinationKind.LIVERAMP else "",
        "pgp_encrypted": bool(d.pgp_public_key),
        "pgp_fingerprint": d.pgp_fingerprint,
        "pgp_subkey_id": d.pgp_subkey_id,
        "credentials_set": d.has_credentials,
    }


def credentials(destination: Destination) -> dict[str, str]:
    """The decrypted credentials (only the transports call this)."""
    if not destination.credentials_encrypted:
        return {}
    return dict(json.loads(decrypt(destination.credentials_encrypted)))


PLAIN_FIELDS = ("host", "port", "username", "remote_dir", "host_key", "bucket", "prefix", "endpoint_url",
                "advertiser_id", "base_url", "enabled", "compression", "region", "pgp_public_key",
                "pgp_subkey_id")  # fmt: skip


def _apply(d: Destination, data: dict[str, Any]) -> None:
    for key in PLAIN_FIELDS:
        if key not in data:
            continue
        value = data[key]
        if key == "port":
            value = _int(value, "port")
            if not 1 <= value <= 65535:
                raise ServiceError("port must be between 1 and 65535")
        elif key == "enabled":
            value = bool(value)
        else:
            value = "" if value is None else str(value).strip()
        setattr(d, key, value)
    creds = data.get("credentials")
    if creds is not None:
        if not isinstance(creds, dict):
            raise ServiceError("credentials must be an object")
        allowed = CREDENTIAL_FIELDS[d.kind]
        unknown = sorted(set(creds) - set(allowed))
        if unknown:
            raise ServiceError(f"unknown credential field(s) for {d.kind}: {', '.join(unknown)}")
        merged = {**credentials(d), **{k: str(v) for k, v in creds.items() if v not in (None, "")}}
        d.credentials_encrypted = encrypt(json.dumps(merged)) if merged else ""
    if d.kind == DestinationKind.LIVERAMP:
        _liveramp_endpoint(d)


def _liveramp_endpoint(d: Destination) -> None:
    """A LiveRamp destination's port follows its region (US 22, AU 2222, EU 4222): a port that is one of those
    three is replaced by the region's, so changing the region is enough; any other port is an explicit override
    (a proxy, a test server) and is kept. The upload folder is `/uploads` or a subfolder of it; a bare folder
    name is taken as `/uploads/<name>`."""
    d.region = (d.region or LiveRampRegion.US).lower()
    if d.region not in LIVERAMP_PORTS:
        raise ServiceError(f"region must be one of {', '.join(LiveRampRegion.values)} (LiveRamp's SFTP endpoints)")
    if d.port in LIVERAMP_PORTS.values():
        d.port = LIVERAMP_PORTS[d.region]
    folder = (d.remote_dir or LIVERAMP_UPLOADS).strip().rstrip("/") or LIVERAMP_UPLOADS
    if not folder.startswith("/"):
        folder = f"{LIVERAMP_UPLOADS}/{folder}"
    if folder != LIVERAMP_UPLOADS and not folder.startswith(LIVERAMP_UPLOADS + "/"):
        raise ServiceError(f"LiveRamp takes files under {LIVERAMP_UPLOADS}/<subfolder> (the subfolder must exist "
                           f"on their server), not {folder!r}")  # fmt: skip
    d.remote_dir = folder


def _validate(d: Destination) -> None:
    if d.compression not in ("", "gzip"):
        raise ServiceError(f"unknown compression {d.compression!r}; use gzip or leave it empty")
    if d.compression and d.kind == DestinationKind.TTD:
        raise ServiceError("a TTD destination takes no files: compression does not apply")
    if d.kind in (DestinationKind.LIVERAMP, DestinationKind.SFTP):
        if not d.host:
            raise ServiceError("an SFTP destination needs a host")
        if not d.username:
            raise ServiceError("an SFTP destination needs a username")
        if not d.host_key:
            raise ServiceError("an SFTP destination needs the server's host key (pinned; unknown keys are refused)")
        _parse_host_key(d.host_key)
        private_key = credentials(d).get("private_key", "")
        _parse_private_key(private_key)
        if d.kind == DestinationKind.LIVERAMP and d.region in KEY_ONLY_REGIONS and not private_key:
            raise ServiceError(f"LiveRamp's {REGION_NAMES[d.region]} endpoint (port {LIVERAMP_PORTS[d.region]}) "
                               "takes SSH keys only: add the private key whose public key LiveRamp registered for "
                               "this account")  # fmt: skip
    elif d.kind == DestinationKind.S3 and not d.bucket:
        raise ServiceError("an S3 destination needs a bucket")
    elif d.kind == DestinationKind.TTD and not d.advertiser_id:
        org = current_org()
        d.advertiser_id = org.ttd_advertiser_id if org is not None else ""
        if not d.advertiser_id:
            raise ServiceError("a TTD destination needs an advertiser id")
    _validate_pgp(d)


def _validate_pgp(d: Destination) -> None:
    """LiveRamp files may be PGP-encrypted with their public key (and a subkey id): the key is read here, so a
    paste that is not a usable public key is a form error, never a failed delivery."""
    from activation.pgp import PgpError, check_subkey, inspect_key

    if not d.pgp_public_key:
        if d.pgp_subkey_id:
            raise ServiceError("a PGP subkey id needs the PGP public key it belongs to")
        d.pgp_fingerprint = ""
        return
    if d.kind != DestinationKind.LIVERAMP:
        raise ServiceError("PGP encryption applies to LiveRamp destinations only")
    try:
        info = inspect_key(d.pgp_public_key)
        d.pgp_subkey_id = check_subkey(info, d.pgp_subkey_id)
    except PgpError as exc:
        raise ServiceError(str(exc)) from None
    d.pgp_fingerprint = info.fingerprint


def _parse_host_key(text: str) -> None:
    import asyncssh

    try:
        asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ServiceError(f"the host key is not an OpenSSH public key: {exc}") from None


def _parse_private_key(text: str) -> None:
    import asyncssh

    if not text:
        return
    try:
        asyncssh.import_private_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        # the message never quotes the key: it is a secret
        raise ServiceError(
            "the SSH private key is not a private key asyncssh can read (OpenSSH or PEM format, without a passphrase)"
        ) from None


def destination_check(*, destination: Destination | None, name: str, kind: str, data: dict[str, Any]) -> None:
    """Raise the ServiceError `destination_create` / `destination_update` would, without saving anything (forms
    call it from clean(), so a refusal is a form error, never a 500)."""
    import copy

    if destination is None:
        name = (name or "").strip()
        _check_new(name, kind)
        d = Destination(name=name, kind=kind)
    else:
        d = copy.copy(destination)
    _apply(d, data)
    _validate(d)


def _check_new(name: str, kind: str) -> None:
    if not NAME_RE.match(name):
        raise ServiceError("a destination name is 1-80 letters, digits, spaces, dots, dashes or underscores")
    if kind not in DestinationKind.values:
        raise ServiceError(f"kind must be one of {', '.join(DestinationKind.values)}")
    if Destination.objects.filter(name=name).exists():
        raise ServiceError(f"a destination named {name!r} already exists")


@org_task
@transaction.atomic
def destination_create(*, actor: User | None, name: str, kind: str, data: dict[str, Any] | None = None,
                       audience_ids: list[int] | None = None) -> Destination:  # fmt: skip
    name = (name or "").strip()
    _check_new(name, kind)
    d = Destination(name=name, kind=kind)
    if kind == DestinationKind.LIVERAMP:
        d.host, d.remote_dir = LIVERAMP_HOST, LIVERAMP_UPLOADS
    _apply(d, data or {})
    _validate(d)
    d.save()
    if audience_ids is not None:
        _set_audiences(d, audience_ids)
    record(action="activation.destination_created", actor=actor, org=current_org(), entity=d,
           after=destination_snapshot(d))  # fmt: skip
    return d


@org_task
@transaction.atomic
def destination_update(*, actor: User | None, destination: Destination, data: dict[str, Any],
                       audience_ids: list[int] | None = None) -> Destination:  # fmt: skip
    before = destination_snapshot(destination)
    _apply(destination, data)
    _validate(destination)
    destination.save()
    if audience_ids is not None:
        _set_audiences(destination, audience_ids)
    record(action="activation.destination_updated", actor=actor, org=current_org(), entity=destination,
           before=before, after=destination_snapshot(destination))  # fmt: skip
    return destination


def _set_audiences(d: Destination, audience_ids: list[int]) -> None:
    from audiences.models import Audience

    ids = [_int(i, "audiences") for i in audience_ids]
    found = list(Audience.objects.filter(pk__in=ids))
    missing = sorted(set(ids) - {a.pk for a in found})
    if missing:
        raise ServiceError(f"unknown audience id(s): {', '.join(map(str, missing))}")
    d.audiences.set(found)


# --- ICP seeds (document 000) ------------------------------------------------------------------------------
@org_task
@transaction.atomic
def icp_seed_designate(*, actor: User | None, audience: Any, destination: Destination) -> Any:
    """Designate an audience as an ICP seed (10K-50K UID2s, named `ICP_Seed_<name>`) and export it to TTD."""
    from activation.models import IcpSeed
    from activation.ttd import export_seed, seed_ids, seed_name

    if destination.kind != DestinationKind.TTD:
        raise ServiceError("ICP seeds are exported to a TTD destination")
    seed_ids(audience)  # refuses outside 10,000-50,000 with the count
    seed, _ = IcpSeed.objects.update_or_create(
        audience=audience, defaults={"destination": destination, "name": seed_name(audience)}
    )
    record(action="activation.icp_seed_designated", actor=actor, org=current_org(), entity=seed,
           after={"audience": audience.pk, "name": seed.name})  # fmt: skip
    result = export_seed(seed, config())
    seed.refresh_from_db()
    return seed, result
