from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhooksConfig(AppConfig):
    name = "servicedesk.webhooks"
    label = "webhooks"
    verbose_name = _("Webhooks")

    def ready(self) -> None:
        from servicedesk.tickets import hooks
        from servicedesk.webhooks.emit import ticket_event_follow

        # Every TicketEvent, in its transaction, becomes its outbox rows (emit.py):
        # the domain does not import webhooks.
        hooks.event_follower_register(ticket_event_follow)
