"""The agent chat console, mounted at /desk/chat/ (before the workspace's own /desk/)."""

from django.urls import path

from . import console

app_name = "chat_console"
urlpatterns = [
    path("", console.console, name="console"),
]
