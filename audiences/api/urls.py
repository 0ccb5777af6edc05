from django.urls import path

from audiences.api import builder_views, views

urlpatterns = [
    path("audiences", views.AudienceList.as_view(), name="audience-list"),
    path("audiences/<int:pk>", views.AudienceDetail.as_view(), name="audience-detail"),
    path("audiences/<int:pk>/members", views.members_csv, name="audience-members"),
    path("imports", views.ImportList.as_view(), name="import-list"),
    path("imports/<int:pk>", views.ImportDetail.as_view(), name="import-detail"),
    # --- issue 5: the audience builder ---
    path("fields", builder_views.FieldCatalogue.as_view(), name="builder-fields"),
    path("fields/bombora", builder_views.BomboraTopicSearch.as_view(), name="builder-bombora-topics"),
    path("audiences/preview", builder_views.Preview.as_view(), name="audience-preview"),
]
