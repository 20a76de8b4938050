from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SlaConfig(AppConfig):
    name = "servicedesk.sla"
    label = "sla"
    verbose_name = _("Service levels")

    def ready(self) -> None:
        # Connects the signals that drop the cached policies and calendars when they change.
        from servicedesk.sla import policies  # noqa: F401
