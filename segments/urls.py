"""Marketer pages for event segments, mounted at /o/<slug>/segments/."""

from django.urls import path

from segments import views

urlpatterns = [
    path("", views.segment_list, name="segments-page"),
    path("new/", views.segment_edit, name="segments-new"),
    path("live/", views.live_counts, name="segments-live"),
    path("users/", views.user_lookup, name="segments-users"),
    path("campaigns/", views.campaigns, name="segments-campaigns-page"),
    path("<int:pk>/", views.segment_detail, name="segments-detail-page"),
    path("<int:pk>/edit/", views.segment_edit, name="segments-edit"),
    path("<int:pk>/toggle/", views.segment_toggle, name="segments-toggle"),
    path("<int:pk>/members.csv", views.members_download, name="segments-members-download"),
]
