from django.urls import path

from campaigns.api import views

urlpatterns = [
    path("campaigns", views.CampaignList.as_view(), name="campaign-list"),
    path("campaigns/<int:pk>", views.CampaignDetail.as_view(), name="campaign-detail"),
    path("metrics", views.Metrics.as_view(), name="metrics"),
]
