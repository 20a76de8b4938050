"""Who follows a ticket, and whom an internal note mentions (docs/followups.md).

Neither is a change to the ticket: following is an agent's own choice, a
mention belongs to its note. Both are written by the services in
``services/followups.py`` and ``services/mentions.py`` and read through
``followups.py`` (``tickets_mentioning``).
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class TicketFollower(models.Model):
    """An agent who asked to hear of a ticket's customer messages and status changes.

    The assignee hears of them without a row (docs/followups.md, "Who is told").
    """

    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="followers")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followed_tickets", verbose_name=_("agent")
    )
    created_at = models.DateTimeField(_("following since"))

    class Meta:
        verbose_name = _("ticket follower")
        verbose_name_plural = _("ticket followers")
        constraints = [
            # Following twice is following once; the constraint decides between two clicks at once.
            models.UniqueConstraint(fields=["ticket", "user"], name="ticket_follower_unique"),
        ]
        indexes = [
            # An agent's followed tickets, the latest first.
            models.Index(fields=["user", "-created_at"], name="ticket_follower_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} follows {self.ticket_id}"


class MessageMention(models.Model):
    """One agent named with ``@`` in an internal note, who could see the ticket when it was written.

    ``ticket`` repeats the note's ticket so "tickets whose notes mention me" is
    one probe of the (user, ticket) index, without reading the messages.
    """

    message = models.ForeignKey("tickets.Message", on_delete=models.CASCADE, related_name="mentions")
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentions", verbose_name=_("agent")
    )
    created_at = models.DateTimeField(_("mentioned at"))

    class Meta:
        verbose_name = _("mention")
        verbose_name_plural = _("mentions")
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="message_mention_unique"),
        ]
        indexes = [
            # tickets_mentioning(user): EXISTS (user, ticket) per ticket, or the user's tickets at once.
            models.Index(fields=["user", "ticket"], name="mention_user_ticket"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.message_id}"
