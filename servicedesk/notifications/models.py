"""Notices to agents: shown in the workspace (the bell, /desk/notifications/) and sent by email.

``servicedesk.notifications.services`` writes them. The unique (user, key)
pair is the idempotency key: whatever runs twice, one notice about one thing
reaches one person once.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class NotificationKind(models.TextChoices):
    SLA_WARNING = "sla_warning", _("SLA warning")
    SLA_BREACH = "sla_breach", _("SLA breach")
    CUSTOMER_MESSAGE = "customer_message", _("New customer message")


class Notification(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("user")
    )
    ticket = models.ForeignKey(
        "tickets.Ticket", null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name=_("ticket")
    )
    kind = models.CharField(_("kind"), max_length=30, choices=NotificationKind.choices)
    # What the notice is about, e.g. ``sla:<target id>:breach``; unique per user.
    key = models.CharField(_("key"), max_length=200)
    title = models.CharField(_("title"), max_length=300)
    body = models.TextField(_("text"), blank=True)
    # A path inside the site (the ticket's page); the email prefixes SITE_URL.
    url = models.CharField(_("link"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"))
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    emailed_at = models.DateTimeField(_("emailed"), null=True, blank=True)
    # Set when the notice is stored to be emailed, cleared by the claim that sends it: a
    # value older than a minute is an email whose task was lost (the broker was down),
    # which ``notification_emails_owed_dispatch`` enqueues again.
    email_owed_since = models.DateTimeField(_("email owed since"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="notification_user_key_unique"),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="notification_user_created"),
            # The bell counts a user's unread notices from this index alone.
            models.Index(fields=["user"], name="notification_user_unread", condition=Q(read_at__isnull=True)),
            # The sweep of owed emails reads only the few notices still waiting.
            models.Index(
                fields=["email_owed_since"],
                name="notification_email_owed",
                condition=Q(email_owed_since__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.title
