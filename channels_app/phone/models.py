"""Phone: the lines a telephone system reports calls of, each call, and the events it was told by.

A telephone system (a PBX through the generic CTI form, or Twilio) tells us of
a call with events (docs/phone.md). Each event is kept as it came
(``CallEvent``, once however often it is sent), and the call's record
(``Call``) is computed again from all of its events after each one, so it ends
the same whatever order they arrive in (``services.call_fold``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from servicedesk.core.secrets import credential_decrypt, credential_encrypt

DEFAULT_LINE_KEY = "default"


class MissedCalls(models.TextChoices):
    """Which unanswered inbound calls of a line become callback tickets."""

    ALL = "all", _("Every caller")
    KNOWN = "known", _("Known customers only")
    NONE = "none", _("None")


class PhoneLine(models.Model):
    """One line (a number, or every number of a telephone system) and how its calls are handled.

    The line ``default`` takes calls to any number that no other line has, and
    is signed with ``SD_PHONE_WEBHOOK_SECRET`` from the environment (besides
    any secret stored on it). A stored secret is encrypted
    (``servicedesk/core/secrets.py``); a new one keeps the previous one valid
    until ``secret_previous_until``, so a telephone system can be switched over
    without a refused event.
    """

    key = models.SlugField(_("key"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=200)
    number = models.CharField(
        _("number"),
        max_length=32,
        blank=True,
        db_index=True,
        help_text=_("In international form (E.164), such as +35312345678. Empty: the line of the default key only."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    queue = models.ForeignKey(
        "tickets.Queue",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="phone_lines",
        verbose_name=_("queue"),
    )
    missed_calls = models.CharField(
        _("callback tickets for missed calls"), max_length=10, choices=MissedCalls.choices, default=MissedCalls.ALL
    )
    acknowledge = models.BooleanField(
        _("acknowledge callbacks and voicemail"),
        default=True,
        help_text=_("A caller with an email address is told by email that we will call back."),
    )
    secret_encrypted = models.TextField(_("secret (encrypted)"), blank=True)
    secret_previous_encrypted = models.TextField(_("previous secret (encrypted)"), blank=True)
    secret_previous_until = models.DateTimeField(_("previous secret accepted until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("phone line")
        verbose_name_plural = _("phone lines")
        constraints = [
            models.UniqueConstraint(fields=["number"], condition=~models.Q(number=""), name="phone_line_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.number or self.key})"

    def secret_set(self, secret: str, *, previous_for: timedelta = timedelta(hours=24)) -> None:
        """A new secret; the current one is still accepted for ``previous_for`` (not saved here)."""
        if self.secret_encrypted:
            self.secret_previous_encrypted = self.secret_encrypted
            self.secret_previous_until = timezone.now() + previous_for
        self.secret_encrypted = credential_encrypt(secret)

    def secrets(self, at: datetime | None = None) -> list[str]:
        """The secrets an event of this line may be signed with now."""
        at = at or timezone.now()
        found = []
        if self.key == DEFAULT_LINE_KEY and settings.SERVICEDESK.get("PHONE_WEBHOOK_SECRET"):
            found.append(settings.SERVICEDESK["PHONE_WEBHOOK_SECRET"])
        if self.secret_encrypted:
            found.append(credential_decrypt(self.secret_encrypted))
        if self.secret_previous_encrypted and self.secret_previous_until and at < self.secret_previous_until:
            found.append(credential_decrypt(self.secret_previous_encrypted))
        return found


class CallDirection(models.TextChoices):
    INBOUND = "in", _("Inbound")
    OUTBOUND = "out", _("Outbound")


class CallState(models.TextChoices):
    RINGING = "ringing", _("Ringing")
    ANSWERED = "answered", _("Answered")
    ENDED = "ended", _("Ended")


class CallOutcome(models.TextChoices):
    """How a call ended (empty while it goes on)."""

    ANSWERED = "answered", _("Answered")
    MISSED = "missed", _("Missed")
    VOICEMAIL = "voicemail", _("Voicemail")
    NOT_ANSWERED = "not_answered", _("Not answered")


class Call(models.Model):
    """One call on a line, as its events tell it (``services.call_fold``)."""

    # Empty for a call an agent logged by hand ("Log a call").
    line = models.ForeignKey(
        PhoneLine, on_delete=models.PROTECT, null=True, blank=True, related_name="calls", verbose_name=_("line")
    )
    call_id = models.CharField(_("call id"), max_length=250)
    direction = models.CharField(_("direction"), max_length=3, choices=CallDirection.choices)
    from_number = models.CharField(_("from"), max_length=64, blank=True)
    to_number = models.CharField(_("to"), max_length=64, blank=True)
    # The other party in E.164 (the caller of an inbound call); empty when withheld.
    number = models.CharField(_("number"), max_length=32, blank=True, db_index=True)
    customer = models.ForeignKey(
        "tickets.Customer",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("customer"),
    )
    queue_name = models.CharField(_("queue"), max_length=100, blank=True)
    # The agents whose phones rang (user ids) and the one who answered.
    ringing = models.JSONField(_("ringing"), default=list, blank=True)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="phone_calls",
        verbose_name=_("agent"),
    )
    state = models.CharField(_("state"), max_length=10, choices=CallState.choices, default=CallState.RINGING)
    outcome = models.CharField(_("outcome"), max_length=15, choices=CallOutcome.choices, blank=True)
    cause = models.CharField(_("cause"), max_length=20, blank=True)
    rang_at = models.DateTimeField(_("rang at"))
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    recording_url = models.URLField(_("recording"), max_length=2000, blank=True)
    voicemail_url = models.URLField(_("voicemail"), max_length=2000, blank=True)
    transcript = models.TextField(_("transcript"), blank=True)
    # The live contact the reports count (docs/metrics.md#live), kept in step with the call.
    session = models.OneToOneField(
        "tickets.Session",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="call",
        verbose_name=_("session"),
    )
    # The ticket the call is on (attached by the agent, opened on answer, or a callback or voicemail ticket).
    ticket = models.ForeignKey(
        "tickets.Ticket",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="calls",
        verbose_name=_("ticket"),
    )
    # An unanswered inbound call whose caller is to be called back (its ticket is the callback ticket).
    callback = models.BooleanField(_("callback"), default=False)
    # A missed call waits this long for an answer reported late before its callback ticket is made
    # (``tickets.call_tickets_sync``); empty when nothing waits.
    settles_at = models.DateTimeField(_("callback due"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    wrapped_up_at = models.DateTimeField(_("wrapped up at"), null=True, blank=True)
    seen_at = models.DateTimeField(_("seen at"), null=True, blank=True)
    seen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("seen by"),
    )
    logged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("logged by"),
    )
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("call")
        verbose_name_plural = _("calls")
        constraints = [models.UniqueConstraint(fields=["line", "call_id"], name="phone_call_id_unique")]
        indexes = [
            models.Index(fields=["-rang_at"], name="phone_call_rang_at"),
            # The caller log's filters (docs/phone.md, "Caller log"), newest first.
            models.Index(fields=["outcome", "-rang_at"], name="phone_call_outcome"),
            models.Index(fields=["line", "-rang_at"], name="phone_call_line"),
            models.Index(fields=["agent", "-rang_at"], name="phone_call_agent"),
            models.Index(fields=["-rang_at"], condition=models.Q(callback=True), name="phone_call_callbacks"),
            # A second missed call from the same number joins the first one's callback ticket.
            models.Index(
                fields=["number", "-ended_at"], condition=models.Q(callback=True), name="phone_call_callback_number"
            ),
            # Missed calls whose callback ticket is due (the beat's sweep).
            models.Index(
                fields=["settles_at"], condition=models.Q(settles_at__isnull=False), name="phone_call_settles_at"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.call_id} ({self.get_direction_display()}, {self.number or _('withheld')})"


class CallEventKind(models.TextChoices):
    NEW_CALL = "newCall", _("Ringing")
    ANSWER = "answer", _("Answered")
    HANGUP = "hangup", _("Hung up")


class CallEvent(models.Model):
    """One event of a call as the telephone system sent it (its fields in ``data``), kept once.

    Stored as it arrives, under its line and the telephone system's call id;
    ``call`` is set when the call's record is folded from it
    (``services.call_fold_run``), which may be a moment later, in a worker.
    """

    line = models.ForeignKey(PhoneLine, on_delete=models.CASCADE, related_name="+", verbose_name=_("line"))
    call_key = models.CharField(_("call id"), max_length=250)
    call = models.ForeignKey(
        Call, on_delete=models.CASCADE, null=True, blank=True, related_name="events", verbose_name=_("call")
    )
    kind = models.CharField(_("event"), max_length=10, choices=CallEventKind.choices)
    at = models.DateTimeField(_("at"))
    data = models.JSONField(_("data"), default=dict)
    # SHA-256 of the event's fields: the same event sent again is the same row.
    digest = models.CharField(_("digest"), max_length=64)
    received_at = models.DateTimeField(_("received"), default=timezone.now)

    class Meta:
        verbose_name = _("call event")
        verbose_name_plural = _("call events")
        constraints = [
            models.UniqueConstraint(fields=["line", "call_key", "digest"], name="phone_call_event_once"),
        ]
        indexes = [
            # The call's events, to fold them.
            models.Index(fields=["line", "call_key"], name="phone_event_call_key"),
            # Events not folded yet, for the sweep that folds what a lost task left.
            models.Index(fields=["received_at"], condition=models.Q(call__isnull=True), name="phone_event_unfolded"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.at:%Y-%m-%d %H:%M:%S}"
