from django.urls import path

from campaigns import views

urlpatterns = [
    path("", views.programs, name="campaign-programs"),
    path("drafts/", views.create_draft, name="campaign-draft-create"),
    path("drafts/<int:pk>/submit/", views.submit_draft, name="campaign-draft-submit"),
]
