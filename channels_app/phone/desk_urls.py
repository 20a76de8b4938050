"""The workspace's call pages, mounted at /desk/calls/ (before the workspace's own /desk/)."""

from django.urls import path

from . import caller_log, views

app_name = "calls"
urlpatterns = [
    path("", caller_log.calls, name="list"),
    path("<int:pk>/seen/", caller_log.seen, name="seen"),
    path("pops/", views.pops, name="pops"),
    path("log/", views.log_call, name="log"),
    path("dial/", views.dial, name="dial"),
    path("<int:pk>/dial-end/", views.dial_end, name="dial_end"),
    path("<int:pk>/pop/", views.pop, name="pop"),
    path("<int:pk>/attach/", views.attach, name="attach"),
    path("<int:pk>/caller/", views.caller, name="caller"),
    path("<int:pk>/ticket/", views.ticket_new, name="ticket_new"),
    path("<int:pk>/wrap-up/", views.wrap_up, name="wrap_up"),
]
