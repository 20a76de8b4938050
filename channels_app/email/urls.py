"""Quarantine pages, included by the agent workspace under /desk/quarantine/."""

from django.urls import path

from channels_app.email import views

app_name = "email_quarantine"
urlpatterns = [
    path("", views.quarantine_list, name="list"),
    path("<int:pk>/", views.quarantine_detail, name="detail"),
    path("<int:pk>/raw/", views.quarantine_raw, name="raw"),
    path("<int:pk>/reprocess/", views.quarantine_reprocess_view, name="reprocess"),
    path("<int:pk>/discard/", views.quarantine_discard_view, name="discard"),
]
