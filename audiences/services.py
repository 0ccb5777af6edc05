"""Writes for audiences (the import and builder issues add loading and materialising)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from audiences import pipeline
from audiences.fields import CUSTOM_TYPES, MAPPABLE_FIELDS, custom_field_names
from audiences.models import (
    Audience,
    AudienceImport,
    AudienceVersion,
    DedupeRule,
    ImportMode,
    ImportStatus,
    MappingTemplate,
    VersionStatus,
)
from p360.core import registry
from p360.core.audit.services import delete_with_audit, record
from p360.core.jobs.dispatch import org_task
from p360.core.jobs.services import job_run_inline, job_start
from tenants.selectors import current_org
from tenants.services import ServiceError

if TYPE_CHECKING:
    from tenants.models import User


def _snapshot(audience: Audience) -> dict[str, Any]:
    return {
        "name": audience.name,
        "kind": audience.kind,
        "status": audience.status,
        "description": audience.description,
    }


@org_task
@transaction.atomic
def audience_save(*, audience: Audience, actor: User | None, changed: list[str] | None = None) -> Audience:
    """Create or update an audience in the current org's schema, with an audit row."""
    created = audience.pk is None
    before = None if created else _snapshot(Audience.objects.get(pk=audience.pk))
    if created and audience.created_by_id is None and actor is not None and actor.is_authenticated:
        audience.created_by = actor
    audience.full_clean()
    audience.save()
    record(
        action="audience.created" if created else "audience.updated",
        actor=actor,
        org=current_org(),
        entity=audience,
        before=before,
        after=_snapshot(audience),
    )
    return audience


@org_task
@transaction.atomic
def audience_delete(*, audience: Audience, actor: User | None) -> None:
    delete_with_audit(audience, actor=actor, org=current_org(), before=_snapshot(audience))


# --- imports ----------------------------------------------------------------------------------------
class ImportError_(ServiceError):
    """An import request that cannot be accepted (shown to the user as is)."""


def _audit_import(imp: AudienceImport, action: str, actor: User | None) -> None:
    record(action=action, actor=actor, org=current_org(), entity=imp, after=import_snapshot(imp))


def import_snapshot(imp: AudienceImport) -> dict[str, Any]:
    return {
        "source": imp.source_name,
        "audience": imp.audience_name,
        "mode": imp.mode,
        "dedupe_key": imp.dedupe_key,
        "dedupe_rule": imp.dedupe_rule,
        "mapping": imp.mapping,
        "status": imp.status,
    }


@org_task
def import_create(
    *,
    audience_name: str,
    source_name: str,
    actor: User | None,
    upload_id: str | None = None,
    path: Path | None = None,
) -> AudienceImport:
    """Register a file for import (from an upload or a local path) and inspect it for the mapping step."""
    audience_name = audience_name.strip()
    if not audience_name:
        raise ImportError_("give the audience a name")
    if len(audience_name) > 200:
        raise ImportError_("the audience name is longer than 200 characters")
    if upload_id is None and path is None:
        raise ImportError_("no file given")
    imp = AudienceImport(
        audience_name=audience_name,
        source_name=source_name[:255],
        upload_id=upload_id,
        storage_name=f"file:{path.resolve()}" if path is not None else "",
        created_by=actor if actor is not None and actor.is_authenticated else None,
        created_by_email=actor.email if actor is not None and actor.is_authenticated else "",
    )
    imp.audience = Audience.objects.filter(name=audience_name).first()
    imp.save()
    try:
        found = pipeline.inspect(imp)
    except pipeline.ImportFailed as exc:
        imp.status, imp.error, imp.finished_at = ImportStatus.REJECTED, str(exc), timezone.now()
        imp.save(update_fields=["status", "error", "finished_at", "updated_at"])
        _audit_import(imp, "audience_import.rejected", actor)
        raise ImportError_(str(exc)) from exc
    imp.file_kind, imp.encoding, imp.delimiter = found.kind, found.encoding, found.delimiter
    imp.file_size, imp.file_sha256, imp.headers = found.size, found.sha256, found.headers
    imp.mapping = {h: f for h, f in found.proposed.items() if f}
    imp.custom_types = found.custom_types
    imp.preview = {h: found.preview[h].to_list() for h in found.headers if h in found.preview.columns}
    template = _matching_template(found.headers)
    if template is not None:
        imp.mapping = {
            h: template.mapping[normalise_header(h)] for h in found.headers if template.mapping.get(normalise_header(h))
        }
    imp.save()
    _audit_import(imp, "audience_import.created", actor)
    return imp


def normalise_header(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


def _matching_template(headers: list[str]) -> MappingTemplate | None:
    """A saved template whose headers are exactly this file's (so the user's earlier choices come back)."""
    wanted = {normalise_header(h) for h in headers}
    for template in MappingTemplate.objects.all():
        if set(template.mapping) == wanted:
            return template
    return None


@org_task
def import_configure(
    *,
    imp: AudienceImport,
    actor: User | None,
    mapping: dict[str, str | None],
    custom_types: dict[str, str] | None = None,
    mode: str = ImportMode.APPEND,
    dedupe_key: str = "",
    dedupe_rule: str = DedupeRule.FIRST,
    default_country: str = "US",
    save_template_as: str = "",
    skip_unmapped: bool = False,
) -> AudienceImport:
    """Record the confirmed mapping and options (validated), ready to start."""
    if imp.status not in {ImportStatus.MAPPING, ImportStatus.FAILED}:
        raise ImportError_(f"this import is {imp.get_status_display().lower()}; it cannot be changed")
    known = set(imp.headers)
    unknown = sorted(set(mapping) - known) if known else []
    if unknown:
        raise ImportError_(f"the mapping names columns the file does not have: {', '.join(unknown)}")
    chosen = {h: f for h, f in mapping.items() if f}
    fields_used = list(chosen.values())
    doubled = sorted({f for f in fields_used if fields_used.count(f) > 1})
    if doubled:
        raise ImportError_(f"each field can be mapped from one column only: {', '.join(doubled)}")
    bad_fields = sorted(set(fields_used) - set(MAPPABLE_FIELDS))
    if bad_fields:
        raise ImportError_(f"unknown fields: {', '.join(bad_fields)}")
    if mode not in ImportMode.values:
        raise ImportError_(f"mode must be one of {', '.join(ImportMode.values)}")
    if dedupe_rule not in DedupeRule.values:
        raise ImportError_(f"dedupe must be one of {', '.join(DedupeRule.values)}")
    custom = {
        h: t for h, t in (custom_types if custom_types is not None else imp.custom_types).items() if h not in chosen
    }
    bad_types = sorted({t for t in custom.values() if t not in CUSTOM_FIELD_TYPES})
    if bad_types:
        raise ImportError_(f"unknown custom field types: {', '.join(bad_types)}")
    if known and not skip_unmapped:
        custom.update({h: imp.custom_types.get(h, "text") for h in imp.headers if h not in chosen and h not in custom})
    allowed_keys = _dedupe_keys(chosen, custom)
    key = dedupe_key or pipeline.default_dedupe_key(chosen)
    if key not in allowed_keys:
        raise ImportError_(
            f"cannot deduplicate on {key!r}: choose one of {', '.join(allowed_keys) or 'a mapped column'}"
        )
    if len(default_country) != 2 or not default_country.isalpha():
        raise ImportError_("the default country must be a two-letter ISO code such as US")
    if not imp.audience_name.strip():
        raise ImportError_("give the audience a name")
    imp.audience = Audience.objects.filter(name=imp.audience_name).first()
    imp.mapping, imp.custom_types, imp.mode = chosen, custom, mode
    imp.dedupe_key, imp.dedupe_rule, imp.default_country = key, dedupe_rule, default_country.upper()
    imp.save()
    if save_template_as.strip():
        MappingTemplate.objects.update_or_create(
            name=save_template_as.strip()[:120],
            defaults={
                "mapping": {normalise_header(h): mapping.get(h) or "" for h in imp.headers},
                "created_by_email": imp.created_by_email,
            },
        )
    _audit_import(imp, "audience_import.configured", actor)
    return imp


CUSTOM_FIELD_TYPES = set(CUSTOM_TYPES)


def _dedupe_keys(mapping: dict[str, str], custom: dict[str, str]) -> list[str]:
    fields = set(mapping.values())
    keys = []
    if "email" in fields:
        keys.append("email_normalized")
    if "phone" in fields:
        keys.append("phone_e164")
    keys += [f for f in ("domain", "maid", "company_name") if f in fields]
    keys += [f"custom.{name}" for name in custom_field_names(custom).values()]
    return keys


@org_task
def import_start(*, imp: AudienceImport, actor: User | None, inline: bool = False) -> AudienceImport:
    """Queue the import as a job, or run it in this process (the command line) as a job all the same."""

    if imp.status not in {ImportStatus.MAPPING, ImportStatus.FAILED}:
        raise ImportError_(f"this import is {imp.get_status_display().lower()}; it cannot be started again")
    AudienceImport.objects.filter(pk=imp.pk).update(status=ImportStatus.QUEUED, error="")
    _audit_import(imp, "audience_import.started", actor)
    params = {"import_id": imp.pk}
    if inline:
        job = job_run_inline(kind="audiences.import", org=current_org(), actor=actor, params=params)
    else:
        with transaction.atomic():
            job = job_start(kind="audiences.import", org=current_org(), actor=actor, params=params)
    AudienceImport.objects.filter(pk=imp.pk).update(job_id=job.pk)
    imp.refresh_from_db()
    return imp


@org_task
def import_rerun(*, imp: AudienceImport, actor: User | None) -> AudienceImport:
    """Load the same file again with the same options, as a new import."""
    if not imp.is_finished:
        raise ImportError_("the import is still running")
    copy = AudienceImport.objects.get(pk=imp.pk)
    copy.pk = None
    copy.status = ImportStatus.MAPPING
    for name in ("rows_read", "rows_loaded", "rows_quarantined", "duplicates", "blank_lines"):
        setattr(copy, name, 0)
    copy.quality, copy.quarantine_file, copy.error, copy.version, copy.job_id = {}, "", "", None, None
    copy.started_at = copy.finished_at = None
    copy.created_by = actor if actor is not None and actor.is_authenticated else None
    copy.created_by_email = actor.email if actor is not None and actor.is_authenticated else ""
    copy.save()
    _audit_import(copy, "audience_import.rerun", actor)
    return import_start(imp=copy, actor=actor)


@org_task
@transaction.atomic
def version_restore(*, version: AudienceVersion, actor: User | None) -> AudienceVersion:
    """Point the audience back at an earlier version (its records are kept while within retention)."""
    audience = Audience.objects.select_for_update().get(pk=version.audience_id)
    if version.status != VersionStatus.READY:
        raise ServiceError(f"version {version.number} was pruned by retention; its records are gone")
    before = {"current_version": audience.current_version.number if audience.current_version else None}
    audience.current_version = version
    audience.record_count = version.record_count
    audience.save(update_fields=["current_version", "record_count", "updated_at"])
    registry.call_hooks("audience_records_changed", audience_id=audience.pk)
    record(
        action="audience.version_restored",
        actor=actor,
        org=current_org(),
        entity=audience,
        before=before,
        after={"current_version": version.number},
    )
    return version


# --- issue 5: built (saved) audiences and templates; implemented in audiences/saved.py -------------------------
from audiences.saved import (  # noqa: E402
    built_audience_create,
    built_audience_refresh,
    built_audience_update,
    ensure_builtin_templates,
    refresh_all_built,
    template_create,
)

__all__ = [
    "audience_delete",
    "audience_save",
    "built_audience_create",
    "built_audience_refresh",
    "built_audience_update",
    "ensure_builtin_templates",
    "import_configure",
    "import_create",
    "import_rerun",
    "import_start",
    "refresh_all_built",
    "template_create",
    "version_restore",
]
