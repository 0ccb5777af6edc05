from django.urls import path

from ingestion import views

urlpatterns = [
    path("facebook/", views.facebook_upload, name="facebook-upload"),
    path("runs/<int:run_id>/", views.run_detail, name="ingestion-run"),
    path("runs/<int:run_id>/quarantine.csv", views.quarantine_csv, name="ingestion-run-quarantine"),
]
