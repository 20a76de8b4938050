"""The email channel's inbound API, mounted by the project at /api/v1/ (see servicedesk/urls.py)."""

from django.urls import path

from channels_app.email.api import InboundEmailView

app_name = "email_api"
urlpatterns = [
    path("inbound/email/", InboundEmailView.as_view(), name="inbound-email"),
]
