from django.urls import path

from audiences.api import builder_views, insights_views, views

urlpatterns = [
    # issue 5: list + POST (save a built audience), GET + PATCH (definition versions) replace the read-only views
    path("audiences", builder_views.AudienceListCreate.as_view(), name="audience-list"),
    path("audiences/preview", builder_views.Preview.as_view(), name="audience-preview"),
    path("audiences/overlap", builder_views.Overlap.as_view(), name="audience-overlap"),
    # issue 18: insights
    path("audiences/insights", insights_views.TreeInsights.as_view(), name="audience-tree-insights"),
    path("audiences/similarity", insights_views.Similarity.as_view(), name="audience-similarity"),
    path("audiences/<int:pk>/insights", insights_views.AudienceInsights.as_view(), name="audience-insights"),
    path("audiences/<int:pk>/similar", insights_views.MostSimilar.as_view(), name="audience-similar"),
    path("audiences/<int:pk>/exclude", insights_views.Exclude.as_view(), name="audience-exclude"),
    path("audiences/<int:pk>/usage", insights_views.Usage.as_view(), name="audience-usage"),
    path("audiences/<int:pk>/export", insights_views.export, name="audience-export"),
    path("fields/bombora/domain", insights_views.BomboraDomain.as_view(), name="bombora-domain-signals"),
    path("audiences/<int:pk>", builder_views.AudienceDetailEdit.as_view(), name="audience-detail"),
    path("audiences/<int:pk>/refresh", builder_views.AudienceRefresh.as_view(), name="audience-refresh"),
    path("audiences/<int:pk>/members", views.members_csv, name="audience-members"),
    path("audience-templates", builder_views.Templates.as_view(), name="audience-templates"),
    path("fields", builder_views.FieldCatalogue.as_view(), name="builder-fields"),
    path("fields/bombora", builder_views.BomboraTopicSearch.as_view(), name="builder-bombora-topics"),
    path("imports", views.ImportList.as_view(), name="import-list"),
    path("imports/<int:pk>", views.ImportDetail.as_view(), name="import-detail"),
]
