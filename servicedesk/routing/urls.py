"""Routing pages in the agent workspace, mounted at /desk/routing/."""

from django.urls import path

from servicedesk.routing import views

app_name = "routing"
urlpatterns = [
    path("availability/", views.availability_set, name="availability"),
]
