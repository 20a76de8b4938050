"""What an agent has typed on a ticket but not sent, and the replies held for undo (docs/drafts.md).

Neither is part of the conversation: a draft belongs to its agent alone, and a
held reply becomes a Message only when its undo window has passed
(``services/drafts.py``), so an undone reply never counts as a reply.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class DraftKind(models.TextChoices):
    REPLY = "reply", _("Public reply")
    NOTE = "note", _("Internal note")


class ReplyDraft(models.Model):
    """The reply or internal note one agent is typing on one ticket, saved while they type."""

    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reply_drafts", verbose_name=_("agent")
    )
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="reply_drafts")
    kind = models.CharField(_("kind"), max_length=8, choices=DraftKind.choices)
    text = models.TextField(_("text"))
    quote_history = models.BooleanField(default=False)
    updated_at = models.DateTimeField(_("saved at"))

    class Meta:
        verbose_name = _("reply draft")
        verbose_name_plural = _("reply drafts")
        constraints = [
            # One draft per agent, ticket and kind: a save is an upsert on this key.
            models.UniqueConstraint(fields=["agent", "ticket", "kind"], name="reply_draft_agent_ticket_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} draft of {self.agent_id} on {self.ticket_id}"


class HeldReply(models.Model):
    """A public reply sent from the ticket page, held until ``send_after`` so that it can be undone.

    Released (written as the ticket's reply and delivered) by the task
    scheduled for ``send_after``, or by the sweep when that task was lost.
    One the release could not send is kept, ``returned_at`` set, for its
    agent to put back into the reply box or discard; it is never sent by
    itself. Its files are ``attachments`` (Attachment rows without a message).
    """

    class Returned(models.TextChoices):
        # Why the release did not send it, shown to the agent as "Not sent: <label>".
        MERGED = "merged", _("the ticket it was written on was merged into another one")
        DELETED = "deleted", _("its ticket was deleted")
        ACCESS = "access", _("you may no longer reply on its ticket")
        REFUSED = "refused", _("the ticket refused the reply")

    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="held_replies", verbose_name=_("agent")
    )
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="held_replies")
    text = models.TextField(_("text"))
    quote_history = models.BooleanField(default=False)
    # The status "Send and set solved" (or the API's status) applies with the reply when it is released.
    status_after = models.CharField(max_length=20, blank=True, default="")
    created_at = models.DateTimeField(_("sent at"))
    send_after = models.DateTimeField(_("delivered after"))
    returned_at = models.DateTimeField(_("returned at"), null=True, blank=True)
    returned_reason = models.CharField(max_length=16, blank=True, default="", choices=Returned.choices)

    class Meta:
        verbose_name = _("held reply")
        verbose_name_plural = _("held replies")
        indexes = [models.Index(fields=["send_after"], name="held_reply_send_after")]

    def __str__(self) -> str:
        return f"reply of {self.agent_id} on {self.ticket_id} held until {self.send_after:%H:%M:%S}"
