from django.urls import path

from servicedesk.notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.notification_list, name="list"),
    path("<int:pk>/read/", views.notification_read, name="read"),
    path("read/", views.notification_read_all, name="read_all"),
]
