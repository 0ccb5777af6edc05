"""Report pages under /o/<slug>/reports/ (attribution mounts /o/<slug>/reports/attribution/ itself)."""

from django.urls import path

from reporting import views

app_name = "reporting"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("campaigns/<int:campaign_id>/", views.campaign_detail, name="campaign"),
    path("summaries/", views.summaries, name="summaries"),
    path("summaries/export.csv", views.summary_export_csv, name="summary-csv"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("export.xlsx", views.export_xlsx, name="export-xlsx"),
    path("export.pdf", views.export_pdf, name="export-pdf"),
    path("exports/<int:job_id>/", views.export_job, name="export-job"),
    path("exports/<int:job_id>/download", views.export_download, name="export-download"),
]
