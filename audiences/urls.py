"""Marketer pages for audiences, mounted at /o/<slug>/audiences/."""

from django.urls import path

from audiences import builder_views, views

urlpatterns = [
    path("", views.audience_list, name="audience-list-page"),
    # --- audience builder (issue 5): build, edit, templates, overlap ---
    path("build/", builder_views.builder_new, name="audience-builder"),
    path("build/templates/", builder_views.builder_templates, name="audience-builder-templates"),
    path("overlap/", builder_views.overlap, name="audience-overlap"),
    path("<int:pk>/edit/", builder_views.builder_edit, name="audience-builder-edit"),
    path("<int:pk>/refresh/", builder_views.audience_refresh, name="audience-builder-refresh"),
    path("<int:pk>/", views.audience_detail, name="audience-detail-page"),
    path("<int:pk>/members/download/", views.members_download, name="audience-members-download"),
    path("<int:pk>/versions/<int:number>/restore/", views.version_restore_view, name="audience-version-restore"),
    path("import/", views.import_upload, name="audience-import"),
    path("import/upload/<uuid:upload_id>/", views.import_from_upload, name="audience-import-from-upload"),
    path("imports/", views.import_history, name="audience-import-history"),
    path("imports/<int:pk>/", views.import_detail, name="audience-import-detail"),
    path("imports/<int:pk>/map/", views.import_map, name="audience-import-map"),
    path("imports/<int:pk>/status.json", views.import_status_json, name="audience-import-status"),
    path("imports/<int:pk>/quarantine.csv", views.import_quarantine, name="audience-import-quarantine"),
    path("imports/<int:pk>/rerun/", views.import_rerun_view, name="audience-import-rerun"),
]
