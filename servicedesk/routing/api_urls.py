"""Routing's part of REST API v1, mounted at /api/v1/."""

from django.urls import path

from servicedesk.routing import api

app_name = "routing_api"
urlpatterns = [
    path("me/availability/", api.MyAvailabilityView.as_view(), name="my-availability"),
]
