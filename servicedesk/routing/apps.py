from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RoutingConfig(AppConfig):
    name = "servicedesk.routing"
    label = "routing"
    verbose_name = _("Routing")

    def ready(self) -> None:
        from servicedesk.routing.follow import ticket_event_follow
        from servicedesk.routing.services import inbound_ticket_route
        from servicedesk.tickets import hooks

        # The domain never imports routing: it calls these through its hooks
        # (servicedesk/tickets/hooks.py, docs/architecture.md "Dependency rules").
        hooks.event_follower_register(ticket_event_follow)
        hooks.inbound_router_register(inbound_ticket_route)
