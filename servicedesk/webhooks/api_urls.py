"""Webhooks' part of REST API v1, mounted at /api/v1/."""

from django.urls import path

from servicedesk.webhooks import api

app_name = "webhooks_api"
urlpatterns = [
    path("webhooks/", api.EndpointListView.as_view(), name="endpoint-list"),
    path("webhooks/<int:pk>/", api.EndpointDetailView.as_view(), name="endpoint-detail"),
    path("webhooks/<int:pk>/deliveries/", api.EndpointDeliveriesView.as_view(), name="endpoint-deliveries"),
    path(
        "webhooks/deliveries/<int:pk>/redeliver/",
        api.DeliveryRedeliverView.as_view(),
        name="delivery-redeliver",
    ),
]
