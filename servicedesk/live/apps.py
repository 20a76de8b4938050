from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LiveConfig(AppConfig):
    name = "servicedesk.live"
    label = "live"
    verbose_name = _("Live updates")

    def ready(self) -> None:
        from servicedesk.live.follow import ticket_event_follow
        from servicedesk.tickets import hooks

        # The domain never imports this package: it hears of every TicketEvent
        # through the ticket hooks (docs/architecture.md, "Live updates").
        hooks.event_follower_register(ticket_event_follow)
