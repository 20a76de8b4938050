"""Messages on a ticket and their attachments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class DroppedAttachment:
    """A file a message came with and the desk did not keep, and why.

    Stored on the message (``Message.dropped_attachments``) as a reason code,
    so the agent reads the reason in their own language; see
    docs/architecture.md, "The email channel".
    """

    TYPE: ClassVar[str] = "type"
    SIZE: ClassVar[str] = "size"
    COUNT: ClassVar[str] = "count"

    filename: str
    reason: str
    # The limit in force when the file was dropped (bytes or files); 0 for a type.
    limit: int = 0

    def __post_init__(self) -> None:
        if not self.limit and self.reason in (self.SIZE, self.COUNT):
            key = "ATTACHMENT_MAX_BYTES" if self.reason == self.SIZE else "ATTACHMENT_MAX_COUNT"
            object.__setattr__(self, "limit", int(settings.SERVICEDESK[key]))

    def message(self) -> str:
        """Why the file was not kept, in the active language, naming the file."""
        if self.reason == self.SIZE:
            return gettext("%(name)s is larger than %(limit)s.") % {
                "name": self.filename,
                "limit": filesizeformat(self.limit),
            }
        if self.reason == self.COUNT:
            return gettext("%(name)s was not kept: at most %(n)d files can be attached.") % {
                "name": self.filename,
                "n": self.limit,
            }
        return gettext("%(name)s is not a file type we accept.") % {"name": self.filename}

    def as_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "reason": self.reason, "limit": self.limit}

    @classmethod
    def from_json(cls, value: Any) -> DroppedAttachment | None:
        if not isinstance(value, dict) or value.get("reason") not in (cls.TYPE, cls.SIZE, cls.COUNT):
            return None
        return cls(filename=str(value.get("filename", "")), reason=value["reason"], limit=int(value.get("limit") or 0))


class MessageKind(models.TextChoices):
    """As defined in docs/metrics.md#replies: only ``public_agent`` is a reply."""

    PUBLIC_ENDUSER = "public_enduser", _("Customer message")
    PUBLIC_AGENT = "public_agent", _("Agent reply")
    INTERNAL = "internal", _("Internal note")
    SYSTEM = "system", _("System message")


class DeliveryStatus(models.TextChoices):
    NONE = "", _("Not delivered")
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class Message(models.Model):
    class Purpose(models.TextChoices):
        NONE = "", "-"
        ACKNOWLEDGEMENT = "acknowledgement", _("Acknowledgement")
        # A phone call's entry in the thread: what the call was is in ``facts``.
        CALL = "call", _("Call")

    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="messages")
    # The ticket a merge or a split moved this message off (the first one, when it
    # moved again): the reports count it there, as of any instant (docs/metrics.md#merges).
    moved_from = models.ForeignKey(
        "tickets.Ticket", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(_("kind"), max_length=20, choices=MessageKind.choices)
    channel = models.CharField(_("channel"), max_length=10)
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default="", blank=True)
    author_customer = models.ForeignKey(
        "tickets.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    text = models.TextField(_("text"), blank=True)
    # What a structured entry records, shown from these values in the reader's
    # language (a call: direction, number, agent, times, links).
    facts = models.JSONField(_("facts"), default=dict, blank=True)
    # ``text`` without quoted history and signature, when they were trimmed.
    display_text = models.TextField(_("text as shown"), blank=True)
    html = models.TextField(_("HTML (sanitised)"), blank=True)
    # The channel's own id for this message (Message-ID, form submission id, ...).
    external_id = models.CharField(max_length=255, null=True, blank=True)
    # RFC 5322 Message-ID of mail we send (and of mail we receive), for threading.
    rfc_message_id = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    recipients = models.JSONField(default=list, blank=True)
    # Files the message came with that were not kept: DroppedAttachment.as_json() each.
    dropped_attachments = models.JSONField(default=list, blank=True)
    # An agent reply that carries the earlier conversation quoted below it.
    quote_history = models.BooleanField(_("quote the earlier conversation"), default=False)
    delivery_status = models.CharField(
        _("delivery"),
        max_length=10,
        choices=DeliveryStatus.choices,
        default="",
        blank=True,
    )
    delivery_error = models.TextField(blank=True)
    delivery_attempts = models.PositiveSmallIntegerField(default=0)
    # When the delivery that moved the message to ``sending`` claimed it: a
    # claim older than the lease belongs to a worker that died (docs/architecture.md).
    delivery_claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("created"))

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="message_channel_external_id_unique",
            ),
            # At most one acknowledgement per ticket, whatever runs twice.
            models.UniqueConstraint(
                fields=["ticket"],
                condition=models.Q(purpose="acknowledgement"),
                name="message_one_acknowledgement_per_ticket",
            ),
        ]
        indexes = [
            models.Index(fields=["ticket", "created_at"], name="message_ticket_created"),
            models.Index(fields=["kind", "created_at"], name="message_kind_created"),
            models.Index(
                fields=["moved_from"], condition=models.Q(moved_from__isnull=False), name="message_moved_from"
            ),
            models.Index(
                fields=["delivery_status", "created_at"],
                condition=models.Q(delivery_status__in=["queued", "sending"]),
                name="message_delivery_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.ticket_id}"

    @property
    def is_public(self) -> bool:
        return self.kind in (MessageKind.PUBLIC_ENDUSER, MessageKind.PUBLIC_AGENT) or (
            self.kind == MessageKind.SYSTEM and self.purpose == self.Purpose.ACKNOWLEDGEMENT
        )

    @property
    def delivery_error_display(self) -> str:
        """Why delivery failed, in the active language where it is one of our own
        reasons (a mail server's reply stays as the server wrote it)."""
        return gettext(self.delivery_error) if self.delivery_error else ""

    @property
    def shown_text(self) -> str:
        """What a thread shows by default; the full ``text`` is one click away."""
        return self.display_text or self.text

    @property
    def is_trimmed(self) -> bool:
        return bool(self.display_text) and self.display_text.strip() != self.text.strip()

    @property
    def dropped(self) -> list[DroppedAttachment]:
        """The files this message came with and the desk did not keep."""
        return [d for d in map(DroppedAttachment.from_json, self.dropped_attachments or ()) if d is not None]

    @property
    def author_name(self) -> str:
        if self.author_user_id:
            return str(self.author_user)
        if self.author_customer_id:
            return str(self.author_customer)
        return str(_("Service desk"))


def attachment_upload_to(instance: Attachment, filename: str) -> str:
    # The stored name is the generated key only: a customer's file name never
    # reaches the file system.
    return f"attachments/{instance.key[:2]}/{instance.key}"


class Attachment(models.Model):
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(
        Message,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    key = models.CharField(max_length=64, unique=True)
    file = models.FileField(upload_to=attachment_upload_to, max_length=200)
    filename = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("type"), max_length=100)
    size = models.PositiveBigIntegerField(_("size"))
    sha256 = models.CharField(max_length=64)
    content_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A file of an agent's reply not sent yet (docs/drafts.md): held with it for undo
    # (``held_reply``), or kept for their next reply after an undo. It has no message
    # then, and only ``draft_agent`` may open it; both are cleared when it is sent.
    held_reply = models.ForeignKey(
        "tickets.HeldReply", null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    draft_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="draft_attachments"
    )

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.filename
