"""Satisfaction surveys: one per solve of a ticket, and the rating it collected (docs/metrics.md#csat)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Survey(models.Model):
    """A customer asked to rate one solve of a ticket (``services.surveys``).

    The agent, queue and channel are the ticket's when it was surveyed, so
    the response rate (rated / surveyed) is broken down as it was sent. The
    answer is a ``Rating`` of the ticket (``rating``); a second answer for the
    same solve replaces the first.
    """

    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="surveys")
    customer = models.ForeignKey("tickets.Customer", on_delete=models.CASCADE, related_name="surveys")
    # The solve it asks about (the ticket's ``solved_at`` then; for a chat, when the chat ended): once each.
    solved_at = models.DateTimeField(_("solved"))
    sent_at = models.DateTimeField(_("sent"))
    mailed_at = models.DateTimeField(_("mailed"), null=True, blank=True)
    closes_at = models.DateTimeField(_("closes"))
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queue = models.ForeignKey("tickets.Queue", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.CharField(_("channel"), max_length=10)
    # How it asked: by mail after a solve, or in the chat widget as the chat ended (no mail).
    via = models.CharField(
        _("asked by"), max_length=10, choices=[("mail", _("Mail")), ("chat", _("Chat"))], default="mail"
    )
    address = models.EmailField(_("address"), blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    # Part of the signed link (``survey_token``): replaced, it revokes the links sent.
    key = models.CharField(max_length=32)
    rating = models.OneToOneField(
        "tickets.Rating", null=True, blank=True, on_delete=models.SET_NULL, related_name="survey"
    )

    class Meta:
        verbose_name = _("survey")
        verbose_name_plural = _("surveys")
        constraints = [models.UniqueConstraint(fields=["ticket", "solved_at"], name="survey_once_per_solve")]
        indexes = [
            # A customer surveyed lately is not asked again (SURVEY_QUIET_DAYS).
            models.Index(fields=["customer", "-sent_at"], name="survey_customer_sent"),
            models.Index(fields=["sent_at"], name="survey_sent"),
            # Surveys whose mail is still owed.
            models.Index(fields=["sent_at"], condition=models.Q(mailed_at__isnull=True), name="survey_unmailed"),
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} ({self.sent_at:%Y-%m-%d})"
