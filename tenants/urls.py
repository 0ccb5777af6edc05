"""Global identity pages: profile, API tokens, invitation acceptance."""

from django.urls import path

from tenants import views

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("profile/tokens/", views.token_create, name="profile-token-create"),
    path("profile/tokens/<int:token_id>/revoke/", views.token_revoke, name="profile-token-revoke"),
    path("accounts/invitation/<str:key>/", views.invitation_accept, name="invitation-accept"),
]
