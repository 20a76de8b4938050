"""Live contacts (chat and phone sessions), agents' presence and operating costs.

These rows feed the live-channel figures of docs/metrics.md#live (service
level, ASA, abandonment, AHT, occupancy, cost per contact) and the staffing
forecast of docs/metrics.md#staffing. See reports/live.py and reports/staffing.py.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class SessionChannel(models.TextChoices):
    CHAT = "chat", _("Chat")
    PHONE = "phone", _("Phone")


class Session(models.Model):
    """One live contact: it joins the queue, is answered by an agent or abandoned, then ends.

    A waiting session has neither ``answered_at`` nor ``abandoned_at``; it
    never has both. ``after_work_seconds`` is the agent's after-contact work,
    counted in the handle time and as busy time after ``ended_at``.
    """

    channel = models.CharField(_("channel"), max_length=10, choices=SessionChannel.choices)
    customer = models.ForeignKey(
        "tickets.Customer",
        on_delete=models.PROTECT,
        related_name="sessions",
        verbose_name=_("customer"),
    )
    ticket = models.ForeignKey(
        "tickets.Ticket",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sessions",
        verbose_name=_("ticket"),
    )
    # The ticket a merge moved this session off (the first one, when it moved
    # again): the reports count it there, as of any instant (docs/metrics.md#merges).
    moved_from = models.ForeignKey(
        "tickets.Ticket", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sessions",
        verbose_name=_("agent"),
    )
    requested_at = models.DateTimeField(_("requested"))
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    abandoned_at = models.DateTimeField(_("abandoned"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    after_work_seconds = models.PositiveIntegerField(_("after-contact work (seconds)"), default=0)
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        ordering = ["requested_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(answered_at__isnull=True) | Q(abandoned_at__isnull=True),
                name="session_answered_or_abandoned",
            ),
        ]
        indexes = [
            models.Index(fields=["channel", "requested_at"], name="session_channel_requested"),
            models.Index(fields=["agent", "answered_at"], name="session_agent_answered"),
            models.Index(fields=["moved_from"], condition=Q(moved_from__isnull=False), name="session_moved_from"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.external_id or self.pk}"


class PresenceState(models.TextChoices):
    READY = "ready", _("Ready")
    NOT_READY = "not_ready", _("Not ready")
    OFFLINE = "offline", _("Offline")


class PresenceSource(models.TextChoices):
    DESK = "desk", _("Desk")
    IMPORT = "import", _("Import")


class AgentPresence(models.Model):
    """An agent's presence state from ``at`` until the agent's next row.

    The one presence history: routing writes a ``desk`` row with every change of
    an agent's availability (online = ready, away = not ready, offline), the
    history import writes ``import`` rows of the past, earlier than the agent's
    latest desk row. The agent's latest row is their current state, which
    routing keeps cached on its agent profile (docs/architecture.md, "Presence").
    """

    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="presence",
        verbose_name=_("agent"),
    )
    at = models.DateTimeField(_("from"))
    state = models.CharField(_("state"), max_length=10, choices=PresenceState.choices)
    source = models.CharField(_("source"), max_length=10, choices=PresenceSource.choices, default=PresenceSource.DESK)

    class Meta:
        verbose_name = _("agent presence")
        verbose_name_plural = _("agent presence")
        ordering = ["agent", "at"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "at"], name="agent_presence_agent_at_unique"),
        ]
        indexes = [
            models.Index(fields=["agent", "at"], name="agent_presence_agent_at"),
        ]

    def __str__(self) -> str:
        return f"{self.get_state_display()} {self.at:%Y-%m-%d %H:%M:%S}"


class OperatingCost(models.Model):
    """A manager's figure for what running the desk cost over [period_start, period_end)."""

    period_start = models.DateField(_("period start"))
    period_end = models.DateField(_("period end (exclusive)"))
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)

    class Meta:
        verbose_name = _("operating cost")
        verbose_name_plural = _("operating costs")
        ordering = ["period_start", "period_end"]
        constraints = [
            models.UniqueConstraint(fields=["period_start", "period_end"], name="operating_cost_period_unique"),
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_start")), name="operating_cost_period_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.period_start} to {self.period_end}: {self.amount} {self.currency}"
