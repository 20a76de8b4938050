"""Business calendars: a time zone, weekly opening windows and holidays.

Managers edit them in the admin; ``servicedesk.sla.calendars`` turns one into
a ``CalendarSpec`` value and measures business time with it.
"""

import functools
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from servicedesk.tickets.statuses import Priority

MINUTES_PER_DAY = 24 * 60


@functools.cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in _time_zone_names():
        raise ValidationError(_("%(value)s is not an IANA time zone."), params={"value": value}, code="time_zone")


def minute_label(minute: int) -> str:
    """Minutes since midnight as HH:MM; 1440 is 24:00."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


class BusinessCalendar(models.Model):
    slug = models.SlugField(_("identifier"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200)
    time_zone = models.CharField(_("time zone"), max_length=64, validators=[validate_time_zone])
    # The calendar used when none is named (reports, policies without one).
    is_default = models.BooleanField(_("default"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("business calendar")
        verbose_name_plural = _("business calendars")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="sla_calendar_single_default",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.slug


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class OpeningWindow(models.Model):
    """Local opening hours on one weekday, in minutes since midnight; an end of 1440 is 24:00."""

    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.CASCADE,
        related_name="windows",
        verbose_name=_("calendar"),
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    start_minute = models.PositiveSmallIntegerField(_("opens (minute of the day)"))
    end_minute = models.PositiveSmallIntegerField(_("closes (minute of the day)"))

    class Meta:
        verbose_name = _("opening window")
        verbose_name_plural = _("opening windows")
        ordering = ["calendar", "weekday", "start_minute"]
        constraints = [
            models.CheckConstraint(condition=Q(weekday__gte=0, weekday__lte=6), name="sla_window_weekday_range"),
            models.CheckConstraint(
                condition=Q(
                    start_minute__gte=0, start_minute__lt=models.F("end_minute"), end_minute__lte=MINUTES_PER_DAY
                ),
                name="sla_window_start_before_end",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {minute_label(self.start_minute)}-{minute_label(self.end_minute)}"


class Holiday(models.Model):
    """A local date on which the calendar is closed all day."""

    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.CASCADE,
        related_name="holidays",
        verbose_name=_("calendar"),
    )
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        ordering = ["calendar", "date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="sla_holiday_calendar_date_unique")]

    def __str__(self) -> str:
        return f"{self.date.isoformat()} {self.name}".strip()


# Ticket facts a policy may match on, in the order they are shown.
MATCH_KEYS = ("priority", "channel", "tier", "queue", "initiator")


def validate_match(value: object) -> None:
    """A policy's conditions: an object whose keys are among MATCH_KEYS, each a string or a non-empty list of strings."""
    if not isinstance(value, dict):
        raise ValidationError(_("The conditions must be an object."), code="match")
    unknown = sorted(set(value) - set(MATCH_KEYS))
    if unknown:
        raise ValidationError(
            _("Unknown condition %(keys)s; use %(allowed)s."),
            params={"keys": ", ".join(unknown), "allowed": ", ".join(MATCH_KEYS)},
            code="match_key",
        )
    for key, wanted in value.items():
        values = [wanted] if isinstance(wanted, str) else wanted
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise ValidationError(
                _("The condition %(key)s must be a value or a non-empty list of values."),
                params={"key": key},
                code="match_value",
            )


class SlaPolicy(models.Model):
    """Targets per priority on a calendar, for the tickets its conditions match.

    Policies are tried by rank, lowest first; the first whose conditions all
    hold applies. No conditions matches every ticket.
    """

    slug = models.CharField(_("identifier"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200)
    rank = models.PositiveIntegerField(
        _("rank"), unique=True, validators=[MinValueValidator(1)], help_text=_("Lower ranks are tried first.")
    )
    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.PROTECT,
        related_name="policies",
        verbose_name=_("calendar"),
    )
    match = models.JSONField(
        _("conditions"),
        default=dict,
        blank=True,
        help_text=_("Keys among priority, channel, tier, queue, initiator; each a value or a list of values."),
    )
    warning_percent = models.PositiveSmallIntegerField(
        _("warning at (percent of the target)"),
        default=75,
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text=_("Agents are warned when this share of a target has elapsed."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("SLA policy")
        verbose_name_plural = _("SLA policies")
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(condition=Q(rank__gte=1), name="sla_policy_rank_positive"),
            models.CheckConstraint(
                condition=Q(warning_percent__gte=1, warning_percent__lte=99), name="sla_policy_warning_percent_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.slug

    def clean(self) -> None:
        try:
            validate_match(self.match)
        except ValidationError as exc:
            raise ValidationError({"match": exc.messages}) from exc


class TargetHours(models.TextChoices):
    BUSINESS = "business", _("Business hours")
    CALENDAR = "calendar", _("Calendar hours")


class SlaTarget(models.Model):
    """A policy's first-reply and resolution targets for one priority, in minutes; empty means no target."""

    policy = models.ForeignKey(SlaPolicy, on_delete=models.CASCADE, related_name="targets", verbose_name=_("policy"))
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices)
    first_reply_minutes = models.PositiveIntegerField(
        _("first reply (minutes)"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    resolution_minutes = models.PositiveIntegerField(
        _("resolution (minutes)"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    hours = models.CharField(_("hours"), max_length=10, choices=TargetHours.choices, default=TargetHours.BUSINESS)

    class Meta:
        verbose_name = _("SLA target")
        verbose_name_plural = _("SLA targets")
        ordering = ["policy", "priority"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "priority"], name="sla_target_policy_priority_unique"),
            models.CheckConstraint(
                condition=Q(first_reply_minutes__isnull=True) | Q(first_reply_minutes__gte=1),
                name="sla_target_first_reply_positive",
            ),
            models.CheckConstraint(
                condition=Q(resolution_minutes__isnull=True) | Q(resolution_minutes__gte=1),
                name="sla_target_resolution_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy} / {self.get_priority_display()}"


class EscalationThreshold(models.TextChoices):
    WARNING = "warning", _("Warning")
    BREACH = "breach", _("Breach")


class EscalationTargetKind(models.TextChoices):
    ANY = "any", _("Any target")
    FIRST_REPLY = "first_reply", _("First reply")
    RESOLUTION = "resolution", _("Resolution")


class EscalationAction(models.TextChoices):
    RAISE_PRIORITY = "raise_priority", _("Raise the priority")
    MOVE_QUEUE = "move_queue", _("Move to a queue")
    NOTIFY_MANAGER = "notify_manager", _("Notify a manager")


class EscalationRule(models.Model):
    """What the breach check does, besides its notices, when a target of the policy reaches a threshold.

    Each rule is applied at most once per ticket target (``Escalation``), in
    ``order``, together with the notice of its threshold. See docs/sla.md.
    """

    policy = models.ForeignKey(
        SlaPolicy, on_delete=models.CASCADE, related_name="escalation_rules", verbose_name=_("policy")
    )
    threshold = models.CharField(_("when"), max_length=10, choices=EscalationThreshold.choices)
    target_kind = models.CharField(
        _("target"), max_length=12, choices=EscalationTargetKind.choices, default=EscalationTargetKind.ANY
    )
    action = models.CharField(_("action"), max_length=20, choices=EscalationAction.choices)
    priority = models.CharField(
        _("raise to"),
        max_length=10,
        choices=Priority.choices,
        blank=True,
        help_text=_("For “raise the priority”: applied only when it is higher than the ticket's."),
    )
    queue = models.ForeignKey(
        "tickets.Queue",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("queue"),
        help_text=_("For “move to a queue”."),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"groups__name": "manager"},
        verbose_name=_("manager"),
        help_text=_("For “notify a manager”."),
    )
    order = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("escalation rule")
        verbose_name_plural = _("escalation rules")
        ordering = ["policy", "order", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(action=EscalationAction.RAISE_PRIORITY) & ~Q(priority="")
                    | Q(action=EscalationAction.MOVE_QUEUE, queue__isnull=False)
                    | Q(action=EscalationAction.NOTIFY_MANAGER, user__isnull=False)
                ),
                name="sla_escalation_rule_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_threshold_display()}: {self.get_action_display()}"

    def clean(self) -> None:
        if self.action == EscalationAction.RAISE_PRIORITY and not self.priority:
            raise ValidationError({"priority": _("Choose the priority to raise the ticket to.")})
        if self.action == EscalationAction.MOVE_QUEUE and self.queue_id is None:
            raise ValidationError({"queue": _("Choose the queue to move the ticket to.")})
        if self.action == EscalationAction.NOTIFY_MANAGER and self.user_id is None:
            raise ValidationError({"user": _("Choose the manager to notify.")})


class Escalation(models.Model):
    """One escalation rule applied to one ticket target; the unique pair makes it happen once."""

    rule = models.ForeignKey(EscalationRule, on_delete=models.CASCADE, related_name="applications")
    target = models.ForeignKey("tickets.TicketTarget", on_delete=models.CASCADE, related_name="escalations")
    applied_at = models.DateTimeField(_("applied"))

    class Meta:
        verbose_name = _("escalation")
        verbose_name_plural = _("escalations")
        constraints = [
            models.UniqueConstraint(fields=["rule", "target"], name="sla_escalation_rule_target_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} @ {self.applied_at.isoformat()}"
