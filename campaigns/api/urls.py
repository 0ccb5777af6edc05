from django.urls import path

from campaigns.api import orchestration, views
from campaigns.models import Campaign, LineItem

urlpatterns = [
    path("campaigns", views.CampaignList.as_view(), name="campaign-list"),
    path("campaigns/<int:pk>", views.CampaignDetail.as_view(), name="campaign-detail"),
    # --- orchestration (issue 14) ---
    path("campaigns/<int:pk>/tree", orchestration.CampaignUpdate.as_view(), name="campaign-tree"),
    path("campaigns/<int:pk>/reallocation", orchestration.Reallocation.as_view(), name="campaign-reallocation"),
    path("campaigns/<int:pk>/<slug:action>", orchestration.Transition.as_view(model=Campaign), name="campaign-action"),
    path("programs", orchestration.ProgramList.as_view(), name="program-list"),
    path("programs/<int:pk>", orchestration.ProgramDetail.as_view(), name="program-detail"),
    path("line-items", orchestration.LineItemList.as_view(), name="line-item-list"),
    path("line-items/<int:pk>", orchestration.LineItemDetail.as_view(), name="line-item-detail"),
    path(
        "line-items/<int:pk>/<slug:action>", orchestration.Transition.as_view(model=LineItem), name="line-item-action"
    ),
    path("pacing", orchestration.PacingView.as_view(), name="pacing"),
    path("metrics", views.Metrics.as_view(), name="metrics"),
]
