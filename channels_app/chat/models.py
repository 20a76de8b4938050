"""Live chat: the widgets sites embed, their conversations and each conversation's lines.

A conversation is one live contact (docs/chat-protocol.md): its ``Session``
(tickets app) holds the times the reports read (docs/metrics.md#live), its
ticket of channel ``chat`` holds every message as a ``Message``, and its lines
give each message the sequence number the protocol resumes from.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def widget_secret_new() -> str:
    return secrets.token_hex(32)


COLOUR = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("A colour is written #rrggbb."))


class ChatWidget(models.Model):
    """What one embedded widget offers: where it may run, when, and into which queue."""

    key = models.SlugField(
        _("key"),
        max_length=50,
        unique=True,
        default="default",
        help_text=_("Named by the script tag's data-widget attribute; the widget without one uses 'default'."),
    )
    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)
    queue = models.ForeignKey(
        "tickets.Queue", on_delete=models.PROTECT, related_name="chat_widgets", verbose_name=_("chat queue")
    )
    allowed_origins = models.TextField(
        _("allowed origins"),
        blank=True,
        help_text=_(
            "One origin per line, such as https://www.example.com. The API and the WebSocket refuse "
            "every other site. The desk's own pages are always allowed."
        ),
    )
    greeting = models.CharField(_("greeting"), max_length=300, blank=True)
    greeting_zh_hans = models.CharField(_("greeting (Simplified Chinese)"), max_length=300, blank=True)
    colour = models.CharField(_("colour"), max_length=7, default="#1f5fbf", validators=[COLOUR])
    text_colour = models.CharField(_("text colour"), max_length=7, default="#ffffff", validators=[COLOUR])
    name_required = models.BooleanField(_("name required"), default=False)
    email_required = models.BooleanField(
        _("email required"),
        default=True,
        help_text=_("Without it the visitor may chat anonymously; the offline form always asks for an address."),
    )
    hours = models.ForeignKey(
        "sla.BusinessCalendar",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("opening hours"),
        help_text=_("Outside these hours the widget offers the offline form; empty: always open."),
    )
    max_queue_length = models.PositiveIntegerField(
        _("maximum queue length"),
        default=20,
        help_text=_("With this many chats waiting, a new visitor is offered the offline form."),
    )
    max_wait_seconds = models.PositiveIntegerField(
        _("maximum wait (seconds)"),
        default=300,
        help_text=_("After waiting this long the visitor is offered the offline form as well."),
    )
    offer_timeout_seconds = models.PositiveIntegerField(
        _("offer timeout (seconds)"),
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(600)],
        help_text=_("An offer not accepted in this time goes to the next agent, and the first is set away."),
    )
    abandon_grace_seconds = models.PositiveIntegerField(
        _("reconnect grace (seconds)"),
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(3600)],
        help_text=_("A waiting visitor disconnected longer than this has abandoned the chat."),
    )
    idle_timeout_seconds = models.PositiveIntegerField(
        _("idle timeout (seconds)"),
        default=900,
        validators=[MinValueValidator(60)],
        help_text=_("An answered chat with no message for this long ends."),
    )
    secret = models.CharField(
        _("identity secret"),
        max_length=64,
        default=widget_secret_new,
        help_text=_("Signs a signed-in visitor's identity: identity_hmac = HMAC-SHA256(identity, secret), hex."),
    )

    class Meta:
        verbose_name = _("chat widget")
        verbose_name_plural = _("chat widgets")
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name

    def origins(self) -> set[str]:
        return {line.strip().rstrip("/").lower() for line in self.allowed_origins.splitlines() if line.strip()}


class ChatStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    ACTIVE = "active", _("Active")
    ENDED = "ended", _("Ended")
    ABANDONED = "abandoned", _("Abandoned")
    OFFLINE = "offline", _("Offline message")


OPEN_STATUSES = (ChatStatus.WAITING, ChatStatus.ACTIVE)


class ChatConversation(models.Model):
    """One chat from the widget's first message to its end, and the visitor's token for it."""

    widget = models.ForeignKey(ChatWidget, on_delete=models.PROTECT, related_name="conversations")
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.PROTECT, related_name="chat_conversations")
    customer = models.ForeignKey("tickets.Customer", on_delete=models.PROTECT, related_name="chat_conversations")
    # None for an offline message: it never waited for an agent (docs/metrics.md#live).
    session = models.OneToOneField(
        "tickets.Session", null=True, blank=True, on_delete=models.PROTECT, related_name="chat"
    )
    queue = models.ForeignKey("tickets.Queue", on_delete=models.PROTECT, related_name="chat_conversations")
    status = models.CharField(_("status"), max_length=10, choices=ChatStatus.choices)
    # SHA-256 of the visitor token; the token itself is only ever in the visitor's hands.
    token_hash = models.CharField(max_length=64, unique=True)
    token_expires_at = models.DateTimeField()
    visitor_id = models.CharField(_("visitor id"), max_length=64, db_index=True)
    claimed_name = models.CharField(_("name given"), max_length=200, blank=True)
    claimed_email = models.EmailField(_("email given"), max_length=254, blank=True)
    # The address or external id a signed-in visitor's site vouched for (identity_hmac).
    verified_identity = models.CharField(_("verified identity"), max_length=254, blank=True)
    # The agent confirmed the claimed address belongs to the customer who holds it.
    claim_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    language = models.CharField(max_length=10, blank=True)
    origin = models.CharField(max_length=300, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    # The visitor's lines counted against the per-chat limit: the minute that began at
    # ``lines_window_at`` holds ``lines_in_window`` of them (services.VISITOR_MESSAGES_PER_MINUTE).
    lines_window_at = models.DateTimeField(null=True, blank=True)
    lines_in_window = models.PositiveIntegerField(default=0)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="chats"
    )
    offered_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="chat_offers"
    )
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    # Agents who let an offer of this chat expire: not offered it again.
    declined_by = models.JSONField(default=list, blank=True)
    requested_at = models.DateTimeField()
    visitor_seen_at = models.DateTimeField()
    visitor_left_at = models.DateTimeField(null=True, blank=True)
    # Not indexed: every line moves it, and a row none of whose indexed columns changes is
    # updated in place (PostgreSQL's HOT). The idle sweep finds the active chats by
    # ``chat_status_offer``'s status and reads this on their rows.
    last_activity_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Set when the agent closes the wrap-up after the end.
    wrapped_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("chat")
        verbose_name_plural = _("chats")
        ordering = ["requested_at", "id"]
        indexes = [
            models.Index(fields=["queue", "status", "requested_at"], name="chat_queue_status_requested"),
            models.Index(fields=["agent", "status"], name="chat_agent_status"),
            models.Index(fields=["status", "offer_expires_at"], name="chat_status_offer"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="active") | Q(agent__isnull=False), name="chat_active_has_agent"
            ),
        ]

    def __str__(self) -> str:
        return f"chat {self.pk}"


class LineAuthor(models.TextChoices):
    VISITOR = "visitor", _("Visitor")
    AGENT = "agent", _("Agent")
    SYSTEM = "system", _("System")


class ChatLine(models.Model):
    """One numbered line of a conversation: a message (kept on the ticket) or a system notice."""

    conversation = models.ForeignKey(ChatConversation, on_delete=models.CASCADE, related_name="lines")
    seq = models.PositiveIntegerField()
    client_id = models.UUIDField(null=True, blank=True)
    author = models.CharField(max_length=10, choices=LineAuthor.choices)
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    message = models.ForeignKey("tickets.Message", null=True, blank=True, on_delete=models.SET_NULL)
    # A system line's notice code and arguments (rendered in the reader's language).
    notice = models.CharField(max_length=30, blank=True)
    notice_args = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="chat_line_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chat_line_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq}"


class CannedReply(models.Model):
    """A prepared answer an agent inserts into a chat's composer; each queue has its own list."""

    queue = models.ForeignKey(
        "tickets.Queue", on_delete=models.CASCADE, related_name="canned_replies", verbose_name=_("queue")
    )
    title = models.CharField(_("title"), max_length=100)
    text = models.TextField(_("text"), max_length=4000)
    position = models.PositiveIntegerField(_("position"), default=0, help_text=_("Lower numbers come first."))

    class Meta:
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        ordering = ["queue", "position", "title", "id"]
        indexes = [models.Index(fields=["queue", "position"], name="chat_canned_queue_position")]

    def __str__(self) -> str:
        return self.title
