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
    ASSIGNED = "assigned", _("Ticket assigned to you")
    MENTION = "mention", _("Mention in an internal note")
    REMINDER = "reminder", _("Reminder")
    TICKET_STATUS = "ticket_status", _("Status change on a ticket you follow")
    WEBHOOK_PAUSED = "webhook_paused", _("Webhook endpoint paused after failing")


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
    # False when the user's preferences want this kind by email only: the row still
    # keys the notice once and carries its email, but the bell and the list leave it out.
    in_app = models.BooleanField(_("shown in the workspace"), default=True)

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
            models.Index(
                fields=["user"], name="notification_user_unread_shown", condition=Q(read_at__isnull=True, in_app=True)
            ),
            # The sweep of owed emails reads only the few notices still waiting.
            models.Index(
                fields=["email_owed_since"],
                name="notification_email_owed",
                condition=Q(email_owed_since__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.title


class NotificationPreference(models.Model):
    """How one agent wants one kind of notice: in the workspace, by email, both or neither.

    Without a row a kind comes both ways (``preferences.KIND_DEFAULTS``); a
    row is written only when the agent changes something.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_preferences",
        verbose_name=_("user"),
    )
    kind = models.CharField(_("kind"), max_length=30, choices=NotificationKind.choices)
    in_app = models.BooleanField(_("in the workspace"), default=True)
    email = models.BooleanField(_("by email"), default=True)
    updated_at = models.DateTimeField(_("updated"))

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="notification_preference_user_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}"


class Reminder(models.Model):
    """An agent's note to themself about a ticket, delivered as a notification at ``remind_at``.

    Delivered once: the sweep claims it by setting ``delivered_at`` in the
    same transaction that stores the notice (key ``reminder:<id>``).
    ``outcome`` says what the sweep did: ``sent``, or ``not_visible`` when the
    agent could no longer see the ticket (nothing is sent then).
    """

    class Outcome(models.TextChoices):
        SENT = "sent", _("Sent")
        NOT_VISIBLE = "not_visible", _("Not sent: the ticket is no longer yours to see")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reminders", verbose_name=_("agent")
    )
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="+", verbose_name=_("ticket"))
    remind_at = models.DateTimeField(_("remind at"))
    note = models.CharField(_("note"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"))
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices, blank=True)

    class Meta:
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        ordering = ["remind_at", "id"]
        indexes = [
            # The minute's sweep reads only reminders still waiting, the earliest first.
            models.Index(fields=["remind_at"], name="reminder_due", condition=Q(delivered_at__isnull=True)),
            # An agent's reminders on one ticket (the ticket page, the API).
            models.Index(fields=["user", "ticket", "remind_at"], name="reminder_user_ticket"),
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} at {self.remind_at}"
