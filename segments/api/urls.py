from django.urls import path

from segments.api import views

urlpatterns = [
    path("events", views.Events.as_view(), name="segments-events"),
    path("segments", views.SegmentList.as_view(), name="segments-list"),
    path("segments/backtest", views.SegmentBacktest.as_view(), name="segments-backtest"),
    path("segments/<int:pk>", views.SegmentDetail.as_view(), name="segments-detail"),
    path("segments/<int:pk>/status", views.SegmentStatus.as_view(), name="segments-status"),
    path("segments/<int:pk>/members", views.SegmentMembers.as_view(), name="segments-members"),
    path("segments/<int:pk>/history", views.SegmentHistory.as_view(), name="segments-history"),
    path("users/<str:user_id>/segments", views.UserSegments.as_view(), name="segments-user-segments"),
    path("users/<str:user_id>/profile", views.UserProfileView.as_view(), name="segments-user-profile"),
    path("trigger-campaigns", views.TriggerCampaignList.as_view(), name="segments-campaigns"),
    path("trigger-campaigns/<int:pk>", views.TriggerCampaignDetail.as_view(), name="segments-campaign-detail"),
]
