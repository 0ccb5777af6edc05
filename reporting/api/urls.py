from django.urls import path

from reporting.api import views

urlpatterns = [
    path("summaries", views.Summaries.as_view(), name="summaries"),
]
