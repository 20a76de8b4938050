"""Notifications' part of REST API v1, mounted at /api/v1/ (docs/followups.md)."""

from django.urls import path

from servicedesk.notifications import api

app_name = "notifications_api"
urlpatterns = [
    path("tickets/<str:reference>/follow/", api.TicketFollowView.as_view(), name="ticket-follow"),
    path("tickets/<str:reference>/reminders/", api.TicketRemindersView.as_view(), name="ticket-reminders"),
    path("reminders/<int:reminder_id>/", api.ReminderDetailView.as_view(), name="reminder-detail"),
    path(
        "me/notification-preferences/",
        api.MyNotificationPreferencesView.as_view(),
        name="my-notification-preferences",
    ),
]
