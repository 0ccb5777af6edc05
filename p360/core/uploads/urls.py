"""URLs of the uploads app, mounted by p360/urls_tenant.py under /o/<slug>/."""

from django.urls import path

from p360.core.uploads import api, views

# Under /o/<slug>/api/v1/: the tus endpoint (with and without the slash: tus clients POST to
# whatever they were given, and APPEND_SLASH cannot redirect a POST).
api_urlpatterns = [
    path("uploads", api.uploads_collection),
    path("uploads/", api.uploads_collection, name="upload-collection"),
    path("uploads/<uuid:upload_id>", api.upload_resource, name="upload-resource"),
]

# Under /o/<slug>/: the marketer page.
page_urlpatterns = [
    path("uploads/", views.uploads_page, name="uploads-page"),
]
