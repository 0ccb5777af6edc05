"""Marketer pages of activation under /o/<slug>/activation/: the org's destinations with their last delivery, the
delivery settings, one destination's settings and audiences, and a dry run showing the diff.

Everyone who may open the org sees the pages (what the audience page's Activation panel already shows); only
users who may manage its activation (`can_manage_activation`, the rule of the org admin and the API) may change
anything or start a dry run: a POST from anyone else is a 403. Credentials are write-only: their inputs are
always rendered empty, and an empty input keeps the stored value.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from activation import selectors, services
from activation.access import can_manage_activation
from activation.delivery import diff_text, start_delivery
from activation.models import Cadence, Delivery, Destination, DestinationKind, LiveRampRegion, PushMode
from audiences.models import Audience
from tenants.services import ServiceError

# the settings a destination of each kind takes (the rest do not apply to it and are not shown)
SFTP_FIELDS = ("host", "port", "username", "remote_dir", "host_key", "compression")
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    DestinationKind.LIVERAMP: ("region", *SFTP_FIELDS, "pgp_public_key", "pgp_subkey_id"),
    DestinationKind.SFTP: SFTP_FIELDS,
    DestinationKind.S3: ("bucket", "prefix", "endpoint_url", "compression"),
    DestinationKind.TTD: ("advertiser_id", "base_url"),
}
LABELS = {
    "region": "LiveRamp region", "host": "Host", "port": "Port", "username": "Username",
    "remote_dir": "Upload folder", "host_key": "Pinned host key (OpenSSH public key)", "compression": "Compression",
    "pgp_public_key": "PGP public key (ASCII-armoured; files are encrypted when set)",
    "pgp_subkey_id": "PGP subkey id", "bucket": "Bucket", "prefix": "Prefix", "endpoint_url": "Endpoint URL",
    "advertiser_id": "TTD advertiser id", "base_url": "TTD Data API base URL", "password": "SFTP password",
    "private_key": "SSH private key", "access_key_id": "S3 access key id", "secret_access_key": "S3 secret key",
    "auth_token": "TTD-Auth token", "secret_key": "TTD advertiser secret key (TtdSignature)",
}  # fmt: skip
TEXTAREAS = frozenset({"host_key", "pgp_public_key", "private_key"})


def _base(request: HttpRequest) -> str:
    return f"/o/{request.org.slug}/activation/"  # type: ignore[attr-defined]


def _require_manager(request: HttpRequest) -> None:
    if not can_manage_activation(request.user, request.org):  # type: ignore[attr-defined]
        raise PermissionDenied("only the organisation's administrators may change deliveries")


def destinations(request: HttpRequest) -> HttpResponse:
    """The org's destinations with their last delivery and the delivery settings (editable by managers)."""
    if request.method == "POST":
        _require_manager(request)
        changes = {
            "enabled": request.POST.get("enabled") == "on",
            "cadence": request.POST.get("cadence", ""),
            "lookback_days": request.POST.get("lookback_days", ""),
            "push_mode": request.POST.get("push_mode", ""),
        }
        try:
            services.config_update(actor=request.user, **changes)  # type: ignore[arg-type]
        except ServiceError as exc:
            messages.error(request, f"The delivery settings were not saved: {exc}")
        else:
            messages.success(request, "Delivery settings saved.")
        return redirect(_base(request))
    elif request.method != "GET":
        return HttpResponse(status=405)
    rows = [selectors.destination_row(d) for d in Destination.objects.order_by("name")]
    context = {
        "rows": rows,
        "config": selectors.config_row(),
        "cadences": Cadence.choices,
        "push_modes": PushMode.choices,
        "lookbacks": [("30", "30 days"), ("60", "60 days"), ("90", "90 days"), ("", "Never expire")],
        "can_manage": can_manage_activation(request.user, request.org),  # type: ignore[attr-defined]
        "base": _base(request),
    }
    return render(request, "activation/destinations.html", context)


def _fields(d: Destination, posted: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The destination's settings as form rows: its values, or what was just posted when the save was refused."""
    rows = []
    for name in KIND_FIELDS[d.kind]:
        value = posted[name] if posted is not None and name in posted else getattr(d, name)
        row: dict[str, Any] = {"name": name, "label": LABELS[name], "value": "" if value is None else value,
                               "textarea": name in TEXTAREAS}  # fmt: skip
        if name == "region":
            row["choices"] = LiveRampRegion.choices
        elif name == "compression":
            row["choices"] = [("", "None"), ("gzip", "gzip")]
        rows.append(row)
    return rows


def destination_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One destination: settings, audiences, write-only credentials, its deliveries and its last dry run."""
    destination = get_object_or_404(Destination, pk=pk)  # the org's schema: another org's id is a 404
    posted: dict[str, Any] | None = None
    status = 200
    if request.method == "POST":
        _require_manager(request)
        posted, data, audience_ids = _posted(request, destination.kind)
        try:
            services.destination_update(actor=request.user, destination=destination, data=data,  # type: ignore[arg-type]
                                        audience_ids=audience_ids)  # fmt: skip
        except ServiceError as exc:
            messages.error(request, f"Not saved: {exc}")
            destination = Destination.objects.get(pk=pk)  # the refused values never reach the database
            status = 400
        else:
            messages.success(request, f"{destination.name} saved.")
            return redirect(f"{_base(request)}destinations/{pk}/")
    elif request.method != "GET":
        return HttpResponse(status=405)
    context = {
        **_form_context(request, destination, posted, set(destination.audiences.values_list("pk", flat=True))),
        "action": f"{_base(request)}destinations/{pk}/",
        "row": selectors.destination_row(destination),
        "deliveries": Delivery.objects.filter(destination=destination, dry_run=False)[:10],
        "dry_run": Delivery.objects.filter(destination=destination, dry_run=True).first(),
    }
    return render(request, "activation/destination.html", context, status=status)


def _posted(request: HttpRequest, kind: str) -> tuple[dict[str, str], dict[str, Any], list[int]]:
    """A destination form's POST: the settings as typed (to show again if refused), the service's data (with
    the credentials typed; an empty credential keeps the stored one) and the audiences ticked."""
    posted = {name: request.POST.get(name, "") for name in KIND_FIELDS[kind]}
    data: dict[str, Any] = {**posted, "enabled": request.POST.get("enabled") == "on"}
    typed = {k: request.POST.get(k, "").strip() for k in services.CREDENTIAL_FIELDS[kind]}
    data["credentials"] = {k: v for k, v in typed.items() if v}
    audience_ids = [int(x) for x in request.POST.getlist("audiences") if x.isdigit()]  # the form's checkboxes
    return posted, data, audience_ids


def _form_context(
    request: HttpRequest, destination: Destination, posted: dict[str, str] | None, selected: set[int]
) -> dict[str, Any]:
    creds = services.credentials(destination) if destination.pk else {}
    return {
        "d": destination,
        "fields": _fields(destination, posted),
        "credentials": [
            {"name": k, "label": LABELS[k], "set": bool(creds.get(k)), "textarea": k in TEXTAREAS}
            for k in services.CREDENTIAL_FIELDS[destination.kind]
        ],
        "audiences": [
            {"pk": a.pk, "name": a.name, "selected": a.pk in selected} for a in Audience.objects.order_by("name")
        ],
        "can_manage": can_manage_activation(request.user, request.org),  # type: ignore[attr-defined]
        "base": _base(request),
    }


KIND_HELP: dict[str, str] = {
    DestinationKind.LIVERAMP: "Device-id files to LiveRamp over SFTP (US, EU or AU endpoint; optional PGP).",
    DestinationKind.TTD: "Segments of UID2 identities to The Trade Desk's Data API.",
    DestinationKind.SFTP: "Device-id files to any SFTP server with a pinned host key.",
    DestinationKind.S3: "Device-id files to an S3 bucket.",
}


def destination_new(request: HttpRequest) -> HttpResponse:
    """Create a destination: first its kind, then that kind's settings, credentials and audiences (managers)."""
    _require_manager(request)
    kind = request.POST.get("kind") or request.GET.get("kind") or ""
    if kind not in KIND_FIELDS:
        kinds = [
            {"value": value, "label": label, "help": KIND_HELP.get(value, "")}
            for value, label in DestinationKind.choices
        ]
        return render(request, "activation/destination_new.html", {"kinds": kinds, "base": _base(request)})
    draft = Destination(kind=kind)
    if kind == DestinationKind.LIVERAMP:
        draft.host, draft.remote_dir = services.LIVERAMP_HOST, services.LIVERAMP_UPLOADS
    posted: dict[str, str] | None = None
    selected: set[int] = set()
    status = 200
    if request.method == "POST":
        posted, data, audience_ids = _posted(request, kind)
        selected = set(audience_ids)
        draft.enabled = data["enabled"]
        try:
            created = services.destination_create(actor=request.user, name=request.POST.get("name", ""), kind=kind,  # type: ignore[arg-type]
                                                  data=data, audience_ids=audience_ids)  # fmt: skip
        except ServiceError as exc:
            messages.error(request, f"Not created: {exc}")
            status = 400
        else:
            messages.success(request, f"{created.name} created. Try a dry run before its first delivery.")
            return redirect(f"{_base(request)}destinations/{created.pk}/")
    elif request.method != "GET":
        return HttpResponse(status=405)
    context = {
        **_form_context(request, draft, posted, selected),
        "action": f"{_base(request)}destinations/new/",
        "new": True,
        "name": request.POST.get("name", ""),
    }
    return render(request, "activation/destination_new.html", context, status=status)


@require_POST
def destination_dry_run(request: HttpRequest, pk: int) -> HttpResponse:
    """Build the files and count the diff against the last delivery; nothing is sent."""
    destination = get_object_or_404(Destination, pk=pk)
    _require_manager(request)
    delivery = start_delivery(destination=destination, actor=request.user, dry_run=True)  # type: ignore[arg-type]
    if delivery.error:
        messages.error(request, f"Dry run: {delivery.error}")
    else:
        messages.info(request, f"Dry run: {delivery.rows:,} rows, {diff_text(delivery)}. Nothing was sent.")
    return redirect(f"{_base(request)}destinations/{pk}/#dry-run")
