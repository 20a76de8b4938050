from django.apps import AppConfig


class DeskConfig(AppConfig):
    name = "servicedesk.desk"
    label = "desk"

    def ready(self) -> None:
        from servicedesk.desk import pushes  # noqa: F401 (registers the bulk jobs' push)
