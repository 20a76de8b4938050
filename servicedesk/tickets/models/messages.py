"""Messages on a ticket and their attachments."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


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

    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="messages")
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
    # ``text`` without quoted history and signature, when they were trimmed.
    display_text = models.TextField(_("text as shown"), blank=True)
    html = models.TextField(_("HTML (sanitised)"), blank=True)
    # The channel's own id for this message (Message-ID, form submission id, ...).
    external_id = models.CharField(max_length=255, null=True, blank=True)
    # RFC 5322 Message-ID of mail we send (and of mail we receive), for threading.
    rfc_message_id = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    recipients = models.JSONField(default=list, blank=True)
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
    def shown_text(self) -> str:
        """What a thread shows by default; the full ``text`` is one click away."""
        return self.display_text or self.text

    @property
    def is_trimmed(self) -> bool:
        return bool(self.display_text) and self.display_text.strip() != self.text.strip()

    @property
    def author_name(self) -> str:
        if self.author_user_id:
            return str(self.author_user)
        if self.author_customer_id:
            return str(self.author_customer)
        return str(_("Service desk"))


def attachment_upload_to(instance: "Attachment", filename: str) -> str:
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

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.filename
