"""A ticket's SLA targets: what was promised, when it falls due, and how it stands.

``servicedesk.tickets.services.sla`` keeps these rows true to the ticket's
timeline; docs/metrics.md#sla-outcomes defines the states. See docs/sla.md.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from servicedesk.tickets.statuses import Priority


class TargetKind(models.TextChoices):
    FIRST_REPLY = "first_reply", _("First reply")
    RESOLUTION = "resolution", _("Resolution")


class TargetState(models.TextChoices):
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    ACHIEVED = "achieved", _("Achieved")
    BREACHED = "breached", _("Breached")
    CANCELLED = "cancelled", _("Cancelled")


class TicketTarget(models.Model):
    """One target (first reply or resolution) of one ticket, with its policy snapshot.

    ``minutes``, ``hours``, ``priority``, ``policy`` and ``calendar`` are the
    terms in force: fixed once the target is fulfilled, recomputed while it is
    not (a priority change moves the due instant). ``elapsed_seconds`` is the
    measured value (FRT, or RWT) when the row was last evaluated, final once
    fulfilled. ``due_at`` is the instant the measured value reaches the target
    on the running clock; it is empty while paused. ``next_check_at`` is when
    the breach check must next look at the row (a warning or a breach falls
    due); it is empty when nothing can happen without a ticket change.
    """

    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="sla_targets")
    kind = models.CharField(_("target"), max_length=12, choices=TargetKind.choices)
    state = models.CharField(_("state"), max_length=10, choices=TargetState.choices)
    policy = models.ForeignKey("sla.SlaPolicy", on_delete=models.PROTECT, related_name="+", verbose_name=_("policy"))
    calendar = models.ForeignKey(
        "sla.BusinessCalendar", on_delete=models.PROTECT, related_name="+", verbose_name=_("calendar")
    )
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices)
    minutes = models.PositiveIntegerField(_("target (minutes)"))
    hours = models.CharField(_("hours"), max_length=10)
    warning_percent = models.PositiveSmallIntegerField(_("warning at (percent of the target)"))
    started_at = models.DateTimeField(_("started"))
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    warning_at = models.DateTimeField(_("warning due"), null=True, blank=True)
    # The first instant the target counts as breached if nothing changes: the
    # due instant plus a microsecond, or the next opening when due ends a window.
    breaches_at = models.DateTimeField(null=True, blank=True)
    elapsed_seconds = models.FloatField(_("elapsed (seconds)"), default=0)
    fulfilled_at = models.DateTimeField(_("fulfilled"), null=True, blank=True)
    breached_at = models.DateTimeField(_("breached"), null=True, blank=True)
    warning_notified_at = models.DateTimeField(_("warning sent"), null=True, blank=True)
    breach_notified_at = models.DateTimeField(_("breach notice sent"), null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(_("evaluated"))

    class Meta:
        verbose_name = _("SLA target of a ticket")
        verbose_name_plural = _("SLA targets of tickets")
        ordering = ["ticket", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["ticket", "kind"], name="ticket_target_ticket_kind_unique"),
        ]
        indexes = [
            # The breach check reads only the rows whose next check has come.
            models.Index(
                fields=["next_check_at"], name="ticket_target_next_check", condition=Q(next_check_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.get_state_display()}"

    @property
    def is_fulfilled(self) -> bool:
        return self.fulfilled_at is not None

    @property
    def is_running(self) -> bool:
        """The clock counts now: not fulfilled, not paused, not cancelled."""
        return self.due_at is not None and self.fulfilled_at is None and self.state != TargetState.CANCELLED
