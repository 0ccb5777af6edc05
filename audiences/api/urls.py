from django.urls import path

from audiences.api import views

urlpatterns = [
    path("audiences", views.AudienceList.as_view(), name="audience-list"),
    path("audiences/<int:pk>", views.AudienceDetail.as_view(), name="audience-detail"),
]
