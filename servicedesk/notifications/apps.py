from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "servicedesk.notifications"
    label = "notifications"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        from servicedesk.notifications import pushes  # noqa: F401 (registers the bell's push)
        from servicedesk.notifications.follow import ticket_event_follow
        from servicedesk.notifications.services import customer_message_notify_enqueue
        from servicedesk.tickets import hooks

        # Intake tells the assignee of a customer's new message through the
        # ticket hooks: the domain does not import notifications.
        hooks.customer_message_follower_register(customer_message_notify_enqueue)
        # Assignments, status changes, mentions and followers' news (follow.py, docs/followups.md).
        hooks.event_follower_register(ticket_event_follow)
