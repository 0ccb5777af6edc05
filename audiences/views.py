"""Marketer pages for audiences and imports (under /o/<slug>/audiences/)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from audiences import selectors
from audiences.fields import CUSTOM_TYPES, MAPPABLE_FIELDS, custom_field_names, field_label
from audiences.models import Audience, AudienceImport, AudienceVersion, DedupeRule, ImportMode, ImportStatus
from audiences.services import (
    ImportError_,
    import_configure,
    import_create,
    import_rerun,
    import_start,
    version_restore,
)
from p360.core.audit.services import record
from p360.core.exports import XLSX_CONTENT_TYPE, xlsx_bytes
from p360.core.uploads.services import get_completed_upload
from tenants.services import ServiceError


def _base(request: HttpRequest) -> str:
    return f"/o/{request.org.slug}/audiences/"  # type: ignore[attr-defined]


def audience_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    audiences = Audience.objects.select_related("current_version", "created_by")
    if query:
        audiences = audiences.filter(Q(name__icontains=query) | Q(description__icontains=query))
    page = Paginator(audiences, 25).get_page(request.GET.get("page"))
    from audiences.insights.freshness import list_freshness, stale_days

    page.object_list = list(page.object_list)  # type: ignore[assignment]  # annotate the same instances we render
    fresh = list_freshness(page.object_list)  # type: ignore[arg-type]
    for audience in page.object_list:  # issue 18: freshness in the list
        audience.freshness = fresh.get(audience.pk, {})  # type: ignore[attr-defined]
    context = {"page": page, "query": query, "base": _base(request), "stale_days": stale_days()}
    return render(request, "audiences/list.html", context)


def audience_detail(request: HttpRequest, pk: int) -> HttpResponse:
    audience = get_object_or_404(Audience, pk=pk)
    context = {
        "audience": audience,
        "versions": audience.versions.select_related("source_import")[:20],
        "imports": audience.imports.all()[:10],
        "base": _base(request),
    }
    from audiences.insights.views import insights_context

    context.update(insights_context(request, audience))  # issue 18: analytics, similarity, usage, freshness
    return render(request, "audiences/detail.html", context)


@require_POST
def version_restore_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    version = get_object_or_404(AudienceVersion, audience_id=pk, number=number)
    try:
        version_restore(version=version, actor=request.user)  # type: ignore[arg-type]
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Version {number} is current again ({version.record_count:,} records).")
    return redirect(f"{_base(request)}{pk}/")


def import_upload(request: HttpRequest) -> HttpResponse:
    """Step 1: drop a file (resumable upload); when it completes, the page moves on to the mapping."""
    recent = AudienceImport.objects.all()[:5]
    next_url = f"{_base(request)}import/upload/{{id}}/"
    if request.GET.get("audience"):
        next_url += "?" + urlencode({"audience": request.GET["audience"]})
    context = {"recent": recent, "base": _base(request), "next_url": next_url}
    return render(request, "audiences/import_upload.html", context)


def import_from_upload(request: HttpRequest, upload_id: str) -> HttpResponse:
    """The upload finished: register the import (file checked, header read) and show the mapping."""

    existing = AudienceImport.objects.filter(upload_id=upload_id).first()
    if existing is not None:
        return redirect(f"{_base(request)}imports/{existing.pk}/")
    try:
        upload = get_completed_upload(upload_id)
    except Exception as exc:  # unknown, incomplete or expired upload, or another org's id
        raise Http404("No such completed upload.") from exc
    stem = upload.filename.rsplit(".", 1)[0] if "." in upload.filename else upload.filename
    try:
        imp = import_create(
            audience_name=request.GET.get("audience") or stem or "Imported audience",
            source_name=upload.filename,
            actor=request.user,  # type: ignore[arg-type]
            upload_id=str(upload.pk),
        )
    except ImportError_ as exc:
        messages.error(request, f"{upload.filename}: {exc}")
        return redirect(f"{_base(request)}import/")
    return redirect(f"{_base(request)}imports/{imp.pk}/map/")


def import_map(request: HttpRequest, pk: int) -> HttpResponse:
    """Step 2: confirm or edit the proposed mapping on the first rows, choose dedupe and mode, start."""
    imp = get_object_or_404(AudienceImport, pk=pk)
    if imp.status not in {ImportStatus.MAPPING, ImportStatus.FAILED}:
        return redirect(f"{_base(request)}imports/{imp.pk}/")
    errors: list[str] = []
    if request.method == "POST":
        mapping: dict[str, str | None] = {}
        custom_types: dict[str, str] = {}
        for index, header in enumerate(imp.headers):
            choice = request.POST.get(f"map-{index}", "")
            if choice == "__custom__":
                custom_types[header] = request.POST.get(f"type-{index}", "text")
            elif choice and choice != "__skip__":
                mapping[header] = choice
        try:
            imp.audience_name = request.POST.get("audience_name", imp.audience_name).strip() or imp.audience_name
            imp = import_configure(
                imp=imp,
                actor=request.user,  # type: ignore[arg-type]
                mapping=mapping,
                custom_types=custom_types,
                mode=request.POST.get("mode", ImportMode.APPEND),
                dedupe_key=request.POST.get("dedupe_key", ""),
                dedupe_rule=request.POST.get("dedupe_rule", DedupeRule.FIRST),
                default_country=request.POST.get("default_country", "US"),
                save_template_as=request.POST.get("template_name", ""),
                skip_unmapped=True,
            )
            import_start(imp=imp, actor=request.user)  # type: ignore[arg-type]
        except ImportError_ as exc:
            errors.append(str(exc))
        else:
            messages.success(request, f"Import of {imp.source_name} started.")
            return redirect(f"{_base(request)}imports/{imp.pk}/")
    preview = selectors.import_preview(imp)
    custom_names = custom_field_names([h for h in imp.headers if not imp.mapping.get(h)])
    columns = [
        {
            "index": index,
            "header": header,
            "samples": preview.get(header, [])[:5],
            "field": imp.mapping.get(header, ""),
            "custom_type": imp.custom_types.get(header, "text"),
            "custom_name": custom_names.get(header, ""),
        }
        for index, header in enumerate(imp.headers)
    ]
    context = {
        "imp": imp,
        "columns": columns,
        "preview_rows": selectors.preview_rows(preview, imp.headers),
        "fields": [(name, field_label(name)) for name in MAPPABLE_FIELDS],
        "custom_types": CUSTOM_TYPES,
        "modes": ImportMode.choices,
        "rules": DedupeRule.choices,
        "existing": Audience.objects.filter(name=imp.audience_name).first(),
        "audience_names": list(Audience.objects.values_list("name", flat=True)[:200]),
        "errors": errors,
        "base": _base(request),
    }
    return render(request, "audiences/import_map.html", context)


def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    imp = get_object_or_404(AudienceImport.objects.select_related("audience", "version"), pk=pk)
    context = {
        "imp": imp,
        "status": selectors.import_status(imp),
        "quality_rows": selectors.quality_rows(imp),
        "duration": selectors.import_duration(imp),
        "mapping_rows": _mapping_rows(imp),
        "base": _base(request),
    }
    return render(request, "audiences/import_detail.html", context)


def _mapping_rows(imp: AudienceImport) -> list[tuple[str, str]]:
    """(file column, field label) in the file's column order: the report speaks the mapping step's words
    ("Company", "Company domain"), not the stored field names (company_name, domain)."""
    mapping = imp.mapping or {}
    order = [h for h in (imp.headers or []) if h in mapping] + [h for h in mapping if h not in (imp.headers or [])]
    return [(header, field_label(mapping[header])) for header in order]


def import_status_json(request: HttpRequest, pk: int) -> JsonResponse:
    imp = get_object_or_404(AudienceImport, pk=pk)
    return JsonResponse(selectors.import_status(imp))


def import_history(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    imports = AudienceImport.objects.select_related("audience")
    if query:
        imports = imports.filter(
            Q(source_name__icontains=query) | Q(audience_name__icontains=query) | Q(created_by_email__icontains=query)
        )
    if status in ImportStatus.values:
        imports = imports.filter(status=status)
    page = Paginator(imports, 25).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "page": page,
        "query": query,
        "status": status,
        "statuses": ImportStatus.choices,
        "base": _base(request),
    }
    return render(request, "audiences/import_history.html", context)


def import_quarantine(request: HttpRequest, pk: int) -> FileResponse:
    imp = get_object_or_404(AudienceImport, pk=pk)
    if not imp.quarantine_file:
        raise Http404("This import quarantined no rows.")
    handle = default_storage.open(imp.quarantine_file, "rb")
    return FileResponse(handle, as_attachment=True, filename=f"quarantine-import-{imp.pk}.csv", content_type="text/csv")


@require_POST
def import_rerun_view(request: HttpRequest, pk: int) -> HttpResponse:
    imp = get_object_or_404(AudienceImport, pk=pk)
    try:
        again = import_rerun(imp=imp, actor=request.user)  # type: ignore[arg-type]
    except ImportError_ as exc:
        messages.error(request, str(exc))
        return redirect(f"{_base(request)}imports/{imp.pk}/")
    messages.success(request, f"Import #{imp.pk} is running again as #{again.pk}.")
    return redirect(f"{_base(request)}imports/{again.pk}/")


def members_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The members for people: XLSX with text cells (default) or a formula-safe CSV (p360.core.exports).

    The API's `members?format=csv` is the machine file with exact values."""
    import csv
    import io

    from django.db import connection
    from django.http import StreamingHttpResponse

    audience = get_object_or_404(Audience, pk=pk)
    kind = request.GET.get("format", "xlsx")
    if kind not in ("xlsx", "csv"):
        return HttpResponse("format must be xlsx or csv\n", status=400, content_type="text/plain; charset=utf-8")
    header, copy_sql = selectors.members_copy_sql(audience, for_people=kind == "csv")
    record(action="audience.exported", actor=request.user, org=request.org, entity=audience, after={"format": kind})  # type: ignore[arg-type,attr-defined]
    name = f"audience-{audience.pk}-members.{kind}"
    if kind == "csv":
        chunks = selectors.members_csv_stream(audience, for_people=True)
        response: HttpResponse = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")  # type: ignore[assignment]
    else:
        text = io.StringIO()
        if copy_sql is not None:
            with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
                for chunk in copy:
                    text.write(bytes(chunk).decode())
        text.seek(0)
        try:
            body = xlsx_bytes(header, csv.reader(text), sheet_name="Members")
        except ValueError as exc:
            return HttpResponse(f"{exc}\n", status=400, content_type="text/plain; charset=utf-8")
        response = HttpResponse(body, content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
