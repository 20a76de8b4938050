from django.urls import path

from servicedesk.notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.notification_list, name="list"),
    path("<int:pk>/read/", views.notification_read, name="read"),
    path("read/", views.notification_read_all, name="read_all"),
    path("preferences/", views.preferences, name="preferences"),
    path("tickets/<str:reference>/follow/", views.ticket_follow_set, name="ticket_follow"),
    path("tickets/<str:reference>/pending-until/", views.ticket_pending_until, name="ticket_pending_until"),
    path("tickets/<str:reference>/reminders/", views.ticket_reminder_add, name="ticket_reminder_add"),
    path("reminders/<int:pk>/cancel/", views.reminder_cancel_view, name="reminder_cancel"),
]
