"""Automatic assignment: skills, agents' capacity and availability, each queue's mode.

See docs/architecture.md, "Routing". A queue without a ``QueueRouting`` row is
assigned by hand.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from servicedesk.tickets.models import Channel, PresenceState


class SkillKind(models.TextChoices):
    LANGUAGE = "language", _("Language")
    TOPIC = "topic", _("Topic")
    CHANNEL = "channel", _("Channel")
    OTHER = "other", _("Other")


def language_primary(value: str) -> str:
    """The primary subtag of a language tag, lower-cased: ``zh-Hans`` -> ``zh``, ``en_GB`` -> ``en``."""
    return value.strip().replace("_", "-").split("-", 1)[0].lower()


def skill_value_clean(kind: str, value: str) -> str:
    """The stored form of a skill value; ValueError with a user-facing message when it is invalid.

    Languages are kept as their primary subtag (a ticket in ``pt-BR`` needs an
    agent with ``pt``), topics as slugs, channels as channel codes.
    """
    value = value.strip()
    if kind == SkillKind.LANGUAGE:
        value = language_primary(value)
        if not (2 <= len(value) <= 3 and value.isascii() and value.isalpha()):
            raise ValueError(str(_("A language is a two- or three-letter code such as en or zh.")))
    elif kind == SkillKind.CHANNEL:
        value = value.lower()
        if value not in Channel.values:
            raise ValueError(str(_("Unknown channel.")))
    elif kind == SkillKind.TOPIC:
        value = value.lower()
    if not value:
        raise ValueError(str(_("A skill needs a value.")))
    return value


class Skill(models.Model):
    """What a queue may require and an agent may hold: a language, a topic, a channel or anything else."""

    kind = models.CharField(_("kind"), max_length=10, choices=SkillKind.choices)
    value = models.CharField(
        _("value"),
        max_length=50,
        help_text=_("Language code (en, zh), topic identifier, channel (email, chat ...) or a free word."),
    )

    class Meta:
        verbose_name = _("skill")
        verbose_name_plural = _("skills")
        ordering = ["kind", "value"]
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="routing_skill_kind_value_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"

    def clean(self) -> None:
        try:
            self.value = skill_value_clean(self.kind, self.value)
        except ValueError as exc:
            raise ValidationError({"value": str(exc)}) from exc


class Availability(models.TextChoices):
    ONLINE = "online", _("Online")
    AWAY = "away", _("Away")
    OFFLINE = "offline", _("Offline")


# One history: each availability is recorded as the presence state the reports read.
PRESENCE_STATE = {
    Availability.ONLINE: PresenceState.READY,
    Availability.AWAY: PresenceState.NOT_READY,
    Availability.OFFLINE: PresenceState.OFFLINE,
}


def capacity_default() -> int:
    return int(settings.SERVICEDESK["ROUTING_DEFAULT_CAPACITY"])


# The most chats an agent may be offered at the same time (also a database constraint).
CHAT_CAPACITY_MAX = 20


def chat_capacity_default() -> int:
    return int(settings.SERVICEDESK["ROUTING_DEFAULT_CHAT_CAPACITY"])


class AgentProfile(models.Model):
    """How an agent takes tickets and chats: skills, how many at most, and whether now.

    ``availability`` is the agent's current state, a cache of their latest
    presence row (``tickets.AgentPresence``): every change writes both in one
    transaction (services.agent_availability_set, the presence expiry and the
    heartbeat). docs/architecture.md, "Routing" and "Presence".
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="agent_profile",
        verbose_name=_("agent"),
    )
    skills = models.ManyToManyField(Skill, blank=True, related_name="agents", verbose_name=_("skills"))
    capacity = models.PositiveIntegerField(
        _("capacity"),
        default=capacity_default,
        help_text=_("Open tickets (new, open, pending, on hold) routing assigns to this agent at most."),
    )
    chat_capacity = models.PositiveIntegerField(
        _("chat capacity"),
        default=chat_capacity_default,
        validators=[MaxValueValidator(CHAT_CAPACITY_MAX)],
        help_text=_("Chats this agent is offered at the same time at most, from 0 (no chats) to 20."),
    )
    availability = models.CharField(
        _("availability"),
        max_length=10,
        choices=Availability.choices,
        default=Availability.OFFLINE,
    )
    phone_extension = models.CharField(
        _("phone extension"),
        max_length=32,
        blank=True,
        default="",
        # Also on the column: rows written by code that predates the field (old migrations) take it.
        db_default="",
        db_index=True,
        help_text=_("The agent's extension on the telephone system, as its events name it (docs/phone.md)."),
    )
    working_hours = models.ForeignKey(
        "sla.BusinessCalendar",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("working hours"),
        help_text=_("Outside this calendar's opening hours the agent receives no tickets; empty: any time."),
    )
    # The agent with the lowest position is next in a round; each assignment
    # moves the chosen agent behind every other candidate of that decision.
    round_robin_position = models.BigIntegerField(default=0)
    last_assigned_at = models.DateTimeField(_("last assigned"), null=True, blank=True)
    availability_changed_at = models.DateTimeField(_("availability changed"), null=True, blank=True)
    # The last heartbeat of the agent's desk (a desk socket connected or
    # pinged), written at most every HEARTBEAT_INTERVAL; null for an agent who
    # never had one open (API only), whom presence expiry leaves alone.
    seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    # Set when presence expiry took the agent offline: the availability they
    # had then, which their next heartbeat gives back; empty otherwise.
    auto_offline_from = models.CharField(
        _("offline by expiry, from"),
        max_length=10,
        choices=Availability.choices,
        blank=True,
        default="",
    )

    class Meta:
        verbose_name = _("agent profile")
        verbose_name_plural = _("agent profiles")
        ordering = ["user_id"]
        indexes = [
            models.Index(fields=["availability", "user"], name="routing_profile_avail"),
            # Presence expiry (online or away, seen before a bound) and the chat
            # agents selector (online, seen after a bound).
            models.Index(fields=["availability", "seen_at"], name="routing_profile_avail_seen"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(chat_capacity__lte=CHAT_CAPACITY_MAX),
                name="routing_profile_chat_capacity_max",
                violation_error_message=_("A chat capacity is at most 20."),
            ),
        ]

    def __str__(self) -> str:
        return str(self.user)


class RoutingMode(models.TextChoices):
    MANUAL = "manual", _("Manual")
    ROUND_ROBIN = "round_robin", _("Round robin")
    LEAST_LOADED = "least_loaded", _("Least loaded")


class QueueRouting(models.Model):
    """How a queue's new tickets find an agent, and which skills the agent needs."""

    queue = models.OneToOneField(
        "tickets.Queue",
        on_delete=models.CASCADE,
        related_name="routing",
        verbose_name=_("queue"),
    )
    mode = models.CharField(_("assignment"), max_length=20, choices=RoutingMode.choices, default=RoutingMode.MANUAL)
    match_language = models.BooleanField(
        _("match the ticket's language"),
        default=False,
        help_text=_("The agent needs a language skill equal to the ticket's language (when it has one)."),
    )
    match_topic = models.BooleanField(
        _("match the ticket's topic"),
        default=False,
        help_text=_("The agent needs a topic skill equal to the ticket's topic (when it has one)."),
    )
    match_channel = models.BooleanField(
        _("match the ticket's channel"),
        default=False,
        help_text=_("The agent needs a channel skill equal to the ticket's channel."),
    )
    required_skills = models.ManyToManyField(
        Skill,
        blank=True,
        related_name="queues",
        verbose_name=_("required skills"),
        help_text=_("Every ticket of the queue needs an agent holding all of these."),
    )

    class Meta:
        verbose_name = _("queue routing")
        verbose_name_plural = _("queue routing")
        indexes = [models.Index(fields=["mode"], name="routing_queue_mode")]

    def __str__(self) -> str:
        return f"{self.queue}: {self.get_mode_display()}"


class Trigger(models.TextChoices):
    """What made routing run: the reason recorded with each assignment."""

    INTAKE = "intake", _("New ticket")
    AGENT_ONLINE = "agent_online", _("Agent came online")
    CAPACITY_FREED = "capacity_freed", _("Agent freed capacity")
    WAITING = "waiting", _("Waiting ticket retried")


class Assignment(models.Model):
    """Why routing gave a ticket to an agent; one per ``assignee`` event it wrote.

    The event itself keeps the shape of every assignee event (the agent's id),
    so the timeline and reports read it like any other.
    """

    event = models.OneToOneField(
        "tickets.TicketEvent",
        on_delete=models.CASCADE,
        related_name="routing_assignment",
    )
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="routing_assignments")
    queue = models.ForeignKey("tickets.Queue", on_delete=models.CASCADE, related_name="+")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(_("assignment"), max_length=20, choices=RoutingMode.choices)
    trigger = models.CharField(_("reason"), max_length=20, choices=Trigger.choices)
    # The agent's open tickets just before this one, counted under the lock.
    load_before = models.PositiveIntegerField()
    at = models.DateTimeField()

    class Meta:
        verbose_name = _("routing assignment")
        verbose_name_plural = _("routing assignments")
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["queue", "at"], name="routing_assignment_queue_at"),
            models.Index(fields=["agent", "at"], name="routing_assignment_agent_at"),
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} -> {self.agent_id} ({self.mode}, {self.trigger})"

    @property
    def reason(self) -> str:
        return f"{self.mode}/{self.trigger}"
