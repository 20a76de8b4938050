"""Webhook endpoints, the outbox of events to send, one delivery per (endpoint, event), and its attempts.

How they move: docs/webhooks.md. An event row is written in the transaction
of the change it reports (the outbox); a delivery is made for every endpoint
subscribed when the event is dispatched; each HTTP request is an attempt.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from servicedesk.core.secrets import credential_decrypt, credential_encrypt


class EventType(models.TextChoices):
    TICKET_CREATED = "ticket.created", _("Ticket created")
    TICKET_UPDATED = "ticket.updated", _("Ticket updated")
    TICKET_SOLVED = "ticket.solved", _("Ticket solved")
    MESSAGE_CREATED = "message.created", _("Message created")
    CHAT_STARTED = "chat.started", _("Chat started")
    CHAT_ENDED = "chat.ended", _("Chat ended")
    CALL_ENDED = "call.ended", _("Call ended")
    RATING_RECEIVED = "rating.received", _("Rating received")


class WebhookEndpoint(models.Model):
    """Where events go: an http(s) URL, its signing secret and the event types it takes.

    ``is_active`` False is a paused endpoint: no new deliveries are made for
    it and its pending ones wait until it is resumed. ``failing_since`` is the
    first failed attempt of the current run of failures (cleared by a
    success); 24 hours of it pause the endpoint (``paused_reason`` "failing").
    """

    class PausedReason(models.TextChoices):
        MANUAL = "manual", _("Paused by hand")
        FAILING = "failing", _("Paused after 24 hours of failed deliveries")

    url = models.URLField(_("URL"), max_length=2000)
    description = models.CharField(_("description"), max_length=300, blank=True)
    event_types = models.JSONField(_("event types"), default=list)
    secret_encrypted = models.TextField(_("secret (encrypted)"))
    is_active = models.BooleanField(_("active"), default=True)
    paused_reason = models.CharField(_("paused because"), max_length=10, choices=PausedReason.choices, blank=True)
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True)
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    # Admins only: lets the endpoint be on a private, loopback or link-local address (docs/webhooks.md).
    allow_private_addresses = models.BooleanField(_("allow private addresses"), default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    @property
    def secret(self) -> str:
        return credential_decrypt(self.secret_encrypted)

    def secret_set(self, secret: str) -> None:
        self.secret_encrypted = credential_encrypt(secret)


class WebhookEvent(models.Model):
    """One event to send (the outbox), written in the transaction of the change it reports.

    ``dispatched_at`` is set by the one dispatch that made its deliveries (a
    claim); a row left without it (its task lost with the broker) is found by
    the sweep. ``dedupe_key`` (unique) keeps one event per fact raised twice
    (a call folded again after it ended).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(_("type"), max_length=30, choices=EventType.choices)
    version = models.PositiveSmallIntegerField(_("version"), default=1)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    data = models.JSONField(_("data"), default=dict)
    ticket_id = models.BigIntegerField(_("ticket id"), null=True, blank=True)
    dedupe_key = models.CharField(_("dedupe key"), max_length=200, null=True, blank=True, unique=True)
    dispatched_at = models.DateTimeField(_("dispatched"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-created_at"]
        indexes = [
            # The sweep reads only the few events not dispatched yet.
            models.Index(fields=["created_at"], name="webhook_event_undispatched", condition=Q(dispatched_at=None)),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    def body(self) -> dict[str, object]:
        """The JSON document sent (docs/webhooks.md, "Payload")."""
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Delivered")
    FAILED = "failed", _("Failed")


# A delivery in one of these states is over: nothing sends it again unless redelivered by hand.
FINISHED_STATES = (DeliveryState.SUCCEEDED, DeliveryState.FAILED)


class WebhookDelivery(models.Model):
    """One event to one endpoint: unique, so an event is delivered successfully at most once there.

    An attempt claims the row (``claimed_until``, a lease longer than any
    request) for the time of its request; the claim is what makes two workers
    never send it at once.
    """

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(_("state"), max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    claimed_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    last_status_code = models.PositiveIntegerField(_("last response code"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once_per_endpoint"),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at", "-id"], name="webhook_delivery_endpoint"),
            # The sweep reads only deliveries still pending.
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(state=DeliveryState.PENDING)
            ),
            # Retention reads the oldest deliveries that are over (services.webhook_log_prune).
            models.Index(
                fields=["created_at"], name="webhook_delivery_finished", condition=Q(state__in=FINISHED_STATES)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, as the delivery log shows it."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField(_("attempt"))
    at = models.DateTimeField(_("at"))
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    status_code = models.PositiveIntegerField(_("response code"), null=True, blank=True)
    response_excerpt = models.CharField(_("response excerpt"), max_length=500, blank=True)
    error = models.CharField(_("error"), max_length=300, blank=True)
    succeeded = models.BooleanField(_("succeeded"), default=False)
    manual = models.BooleanField(_("redelivered by hand"), default=False)

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number")]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"
