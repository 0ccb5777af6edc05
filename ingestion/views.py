"""Marketer pages of an organisation: Facebook upload with history, run details, quarantine CSV."""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from ingestion.models import IngestionRun, Source
from ingestion.uploads import UploadRejected, handle_facebook_upload, max_bytes
from p360.core.exports import neutralise


class FacebookUploadForm(forms.Form):
    file = forms.FileField(label="Meta Ads Manager export (.csv or .xlsx)")
    load_again = forms.BooleanField(required=False, widget=forms.HiddenInput)


def org_runs(org: Any) -> QuerySet[IngestionRun]:
    return IngestionRun.objects.filter(org=org)


def upload_result_message(request: HttpRequest, outcome: object) -> None:
    run = outcome.run  # type: ignore[attr-defined]
    if run.status == "succeeded":
        text = (
            f"Loaded {run.file_name}: {run.rows_read:,} rows read, {run.rows_loaded:,} loaded, "
            f"{run.rows_quarantined:,} quarantined"
        )
        if run.metrics_replaced:
            text += (
                f"; {run.metrics_replaced:,} rows already loaded for the same days and ads were replaced (no doubles)"
            )
        messages.success(request, text + ".")
    else:
        messages.error(request, f"{run.file_name} was not loaded: {run.error}")


def facebook_upload(request: HttpRequest) -> HttpResponse:
    org = request.org  # type: ignore[attr-defined]
    duplicate = None
    if request.method == "POST":
        # Refuse an oversized body before Django reads it into files (memory stays flat).
        if int(request.META.get("CONTENT_LENGTH") or 0) > max_bytes() + 1024 * 1024:
            messages.error(request, f"The file is larger than {max_bytes() // (1024 * 1024)} MB and was not uploaded.")
            return redirect(request.path)
        form = FacebookUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                outcome = handle_facebook_upload(
                    org=org,
                    upload=form.cleaned_data["file"],
                    actor=request.user,  # type: ignore[arg-type]
                    load_again=form.cleaned_data["load_again"],
                )
            except UploadRejected as exc:
                messages.error(request, str(exc))
                return redirect(request.path)
            if outcome.run is None:
                duplicate = outcome.duplicate_of
                messages.warning(
                    request,
                    f"This exact file was already loaded (run #{duplicate.pk}, {duplicate.created_at:%Y-%m-%d %H:%M} UTC). "  # type: ignore[union-attr]
                    "Load it again only if earlier figures were corrected: rows are replaced, never doubled.",
                )
            else:
                upload_result_message(request, outcome)
                return redirect(request.path)
    else:
        form = FacebookUploadForm()
    history = org_runs(org).filter(source=Source.FACEBOOK)
    status = request.GET.get("status", "")
    if status in {"succeeded", "failed", "running", "queued"}:
        history = history.filter(status=status)
    page = Paginator(history, 20).get_page(request.GET.get("page"))
    return render(
        request,
        "ingestion/facebook_upload.html",
        {"form": form, "page": page, "status": status, "duplicate": duplicate, "max_mb": max_bytes() // (1024 * 1024)},
    )


def _run_or_404(request: HttpRequest, run_id: int) -> IngestionRun:
    run = org_runs(request.org).filter(pk=run_id).first()  # type: ignore[attr-defined]
    if run is None:
        raise Http404("No such run in this organisation.")
    return run  # type: ignore[return-value]


def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(request, run_id)
    return render(request, "ingestion/run_detail.html", {"run": run, "quarantined": run.quarantined.all()[:200]})


def quarantine_csv(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(request, run_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-quarantine.csv"'
    writer = csv.writer(response)
    writer.writerow(["line", "reason", "raw"])
    for row in run.quarantined.all().iterator(chunk_size=2000):
        writer.writerow([row.line_no, neutralise(row.reason), neutralise(row.raw)])
    return response
