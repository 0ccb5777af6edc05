from django.urls import path

from activation.api import views

urlpatterns = [
    path("destinations", views.DestinationList.as_view(), name="activation-destinations"),
    path("destinations/<int:pk>", views.DestinationDetail.as_view(), name="activation-destination"),
    path("delivery-config", views.DeliveryConfigView.as_view(), name="activation-config"),
    path("deliveries", views.DeliveryList.as_view(), name="activation-deliveries"),
    path("audiences/<int:pk>/activation", views.AudienceActivation.as_view(), name="audience-activation"),
]
