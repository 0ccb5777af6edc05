"""Marketer pages of the attribution engine, mounted at /o/<slug>/reports/attribution/."""

from django.urls import path

from reporting.attribution import views

urlpatterns = [
    path("", views.attribution_page, name="attribution-page"),
    path("export.csv", views.attribution_csv, name="attribution-csv"),
]
