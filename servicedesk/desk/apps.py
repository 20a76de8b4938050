from django.apps import AppConfig


class DeskConfig(AppConfig):
    name = "servicedesk.desk"
    label = "desk"
