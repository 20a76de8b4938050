"""The phone channel's webhooks, mounted at /api/v1/ (docs/phone.md)."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from . import api, twilio

app_name = "phone_api"
urlpatterns = [
    path("phone/events/", csrf_exempt(api.CtiEventView.as_view()), name="events"),
    path("phone/twilio/voice/", twilio.voice, name="twilio-voice"),
    path("phone/twilio/status/", twilio.status, name="twilio-status"),
    path("phone/twilio/agent/", twilio.agent, name="twilio-agent"),
]
