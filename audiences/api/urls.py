from django.urls import path

from audiences.api import views

urlpatterns = [
    path("audiences", views.AudienceList.as_view(), name="audience-list"),
    path("audiences/<int:pk>", views.AudienceDetail.as_view(), name="audience-detail"),
    path("audiences/<int:pk>/members", views.members_csv, name="audience-members"),
    path("imports", views.ImportList.as_view(), name="import-list"),
    path("imports/<int:pk>", views.ImportDetail.as_view(), name="import-detail"),
]
