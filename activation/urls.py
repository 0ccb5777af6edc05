"""Marketer pages of activation, mounted at /o/<slug>/activation/."""

from django.urls import path

from activation import views

urlpatterns = [
    path("", views.destinations, name="activation-destinations-page"),
    path("destinations/new/", views.destination_new, name="activation-destination-new"),
    path("destinations/<int:pk>/", views.destination_detail, name="activation-destination-page"),
    path("destinations/<int:pk>/dry-run/", views.destination_dry_run, name="activation-destination-dry-run"),
]
