"""A one-view org URLconf for the render baselines: the same middleware and org routing, no real page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

PLAIN_PATH = "bench-plain/"


def plain_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path(PLAIN_PATH, plain_view)]

handler400 = handler403 = handler404 = handler500 = None
