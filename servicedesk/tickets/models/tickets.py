"""Tickets, the queues they sit in, and their timeline (TicketEvent)."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Case, F, IntegerField, Value, When
from django.utils.translation import gettext_lazy as _

from servicedesk.tickets.statuses import Priority, Status


def priority_rank() -> Case:
    """Priority as a number, low (0) to urgent (3); the inbox sorts by it and an index holds it."""
    return Case(
        *(When(priority=value, then=Value(rank)) for rank, value in enumerate(Priority.values)),
        output_field=IntegerField(),
    )


def status_rank() -> Case:
    """Status in lifecycle order, new (0) to closed, rather than alphabetical."""
    return Case(
        *(When(status=value, then=Value(rank)) for rank, value in enumerate(Status.values)),
        output_field=IntegerField(),
    )


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    WEB = "web", _("Web form")
    CHAT = "chat", _("Chat")
    FORUM = "forum", _("Forum")
    PHONE = "phone", _("Phone")
    API = "api", _("API")


class Initiator(models.TextChoices):
    INBOUND = "inbound", _("Customer")
    OUTBOUND = "outbound", _("Agent")


class Queue(models.Model):
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=200)
    email_address = models.EmailField(_("reply-from address"), blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="queues",
        verbose_name=_("agents"),
    )

    class Meta:
        verbose_name = _("queue")
        verbose_name_plural = _("queues")
        ordering = ["name"]
        permissions = [
            ("view_all_queues", "Can see tickets of every queue"),
            ("view_reports", "Can see reports"),
        ]

    def __str__(self) -> str:
        return self.name


class Topic(models.Model):
    """What a ticket is about; the web form offers the active ones."""

    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=200)
    name_zh_hans = models.CharField(_("name (Simplified Chinese)"), max_length=200, blank=True)
    is_public = models.BooleanField(_("offered on the web form"), default=True)
    queue = models.ForeignKey(
        Queue,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="topics",
        verbose_name=_("default queue"),
    )

    class Meta:
        verbose_name = _("topic")
        verbose_name_plural = _("topics")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def label(self, language: str | None) -> str:
        if language and language.lower().startswith("zh") and self.name_zh_hans:
            return self.name_zh_hans
        return self.name


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=64, unique=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Ticket(models.Model):
    reference = models.CharField(_("reference"), max_length=32, unique=True, null=True)
    subject = models.CharField(_("subject"), max_length=300)
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    initiator = models.CharField(_("initiator"), max_length=10, choices=Initiator.choices, default=Initiator.INBOUND)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    customer = models.ForeignKey("tickets.Customer", on_delete=models.PROTECT, related_name="tickets")
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="tickets")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_tickets",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="tickets")
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merged_from",
    )
    same_issue_as = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    language = models.CharField(_("language"), max_length=10, blank=True)
    is_spam = models.BooleanField(_("spam"), default=False)
    is_deleted = models.BooleanField(_("deleted"), default=False)
    # Incremented with every change (services' _touch, under the row lock): the
    # API's ETag, and what a page or client that loaded the ticket compares
    # against (docs/architecture.md, "Concurrent changes").
    version = models.PositiveIntegerField(_("version"), default=1)
    # Random per ticket; part of the signed link in the acknowledgement, so a
    # link can be revoked by rotating it.
    portal_key = models.CharField(max_length=32)
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(_("created"))
    updated_at = models.DateTimeField(_("updated"))
    first_reply_at = models.DateTimeField(_("first reply"), null=True, blank=True)
    solved_at = models.DateTimeField(_("solved"), null=True, blank=True)
    # The SLA policy and calendar in force (docs/metrics.md#sla-policy), and the
    # earliest due instant of a target whose clock runs: the inbox sorts on it.
    sla_policy = models.ForeignKey(
        "sla.SlaPolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("SLA policy"),
    )
    sla_calendar = models.ForeignKey(
        "sla.BusinessCalendar",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("SLA calendar"),
    )
    sla_due_at = models.DateTimeField(_("next SLA due"), null=True, blank=True)
    # A pending ticket may wait until an instant, after which it reopens by itself
    # (services/followups.py); leaving pending clears it (docs/followups.md).
    pending_until = models.DateTimeField(_("pending until"), null=True, blank=True)

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        indexes = [
            models.Index(fields=["queue", "status", "-updated_at"], name="ticket_queue_status_upd"),
            models.Index(fields=["status", "-updated_at"], name="ticket_status_upd"),
            # One index per sort key serves both directions: each reversed sort is the exact mirror.
            models.Index(fields=["-updated_at", "-id"], name="ticket_updated_id"),
            models.Index(fields=["-created_at", "-id"], name="ticket_created_id"),
            models.Index(fields=["subject", "id"], name="ticket_subject_id"),
            models.Index(priority_rank(), F("updated_at"), F("id"), name="ticket_priority_rank"),
            models.Index(status_rank(), F("updated_at").desc(), F("id").desc(), name="ticket_status_rank"),
            # Lists count the live tickets of the caller's queues from this index alone.
            models.Index(
                fields=["queue"],
                name="ticket_live_queue",
                condition=models.Q(merged_into__isnull=True, is_deleted=False),
            ),
            # A list whose tickets come from elsewhere (a tag's links, a search's ids) tests each
            # against the access rule from this index alone (an index-only scan): counting the
            # 10,000 tickets of a tag read each ticket's row, twice as long.
            models.Index(
                fields=["id"],
                include=["queue", "is_spam"],
                name="ticket_live_id",
                condition=models.Q(merged_into__isnull=True, is_deleted=False),
            ),
            models.Index(fields=["assignee", "status"], name="ticket_assignee_status"),
            models.Index(fields=["channel", "-updated_at"], name="ticket_channel_upd"),
            # An agent's lists by channel or priority: their queues' tickets of that channel or
            # priority, newest first, without walking every other queue's.
            models.Index(fields=["queue", "channel", "-updated_at"], name="ticket_queue_channel_upd"),
            models.Index(fields=["queue", "priority", "-updated_at"], name="ticket_queue_priority_upd"),
            models.Index(fields=["customer", "-created_at"], name="ticket_customer_created"),
            # A customer's requests in the help centre, the latest change first.
            models.Index(fields=["customer", "-updated_at", "-id"], name="ticket_customer_updated"),
            models.Index(fields=["priority", "-updated_at"], name="ticket_priority_upd"),
            models.Index(fields=["sla_due_at", "id"], name="ticket_sla_due_id"),
            # The minute's sweep of snoozes that ended reads only the few tickets waiting for a time.
            models.Index(
                fields=["pending_until"], name="ticket_pending_until", condition=models.Q(pending_until__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.subject}"

    @property
    def is_solved(self) -> bool:
        return self.status in (Status.SOLVED, Status.CLOSED)


class TicketEvent(models.Model):
    """One change to a ticket: who, when, what before and after.

    SLA and reports are computed from these rows, never from ``updated_at``.
    """

    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        MESSAGE = "message", _("Message")
        STATUS = "status", _("Status")
        PRIORITY = "priority", _("Priority")
        ASSIGNEE = "assignee", _("Assignee")
        QUEUE = "queue", _("Queue")
        TOPIC = "topic", _("Topic")
        SUBJECT = "subject", _("Subject")
        TAGS = "tags", _("Tags")
        MERGED = "merged", _("Merged")
        MERGED_IN = "merged_in", _("Ticket merged in")
        SPAM = "spam", _("Spam")
        DELETED = "deleted", _("Deleted")
        CUSTOMER = "customer", _("Customer")
        RATING = "rating", _("Rating")
        SURVEYED = "surveyed", _("Satisfaction survey sent")
        ACKNOWLEDGED = "acknowledged", _("Acknowledgement")
        DELIVERY = "delivery", _("Delivery")
        SLA_APPLIED = "sla_applied", _("SLA target applied")
        SLA_PAUSED = "sla_paused", _("SLA target paused")
        SLA_RESUMED = "sla_resumed", _("SLA target resumed")
        SLA_FULFILLED = "sla_fulfilled", _("SLA target fulfilled")
        SLA_BREACHED = "sla_breached", _("SLA target breached")
        SLA_CANCELLED = "sla_cancelled", _("SLA target cancelled")
        PENDING_UNTIL = "pending_until", _("Pending until")
        # A customer message moved to a new ticket (services/merging.py), and the new ticket's side.
        SPLIT = "split", _("Message split into a new ticket")
        SPLIT_FROM = "split_from", _("Split from another ticket")

    # The kinds that set a ticket aside (out of the lists, routing, the SLA and
    # every service metric) or bring it back, each with the Ticket flag it sets.
    SET_ASIDE: ClassVar[dict[str, str]] = {Kind.SPAM: "is_spam", Kind.DELETED: "is_deleted"}

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    at = models.DateTimeField()
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_customer = models.ForeignKey(
        "tickets.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    message = models.ForeignKey(
        "tickets.Message",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
    )
    source = models.CharField(max_length=20, blank=True, help_text="ui, api, intake, import, system")

    class Meta:
        verbose_name = _("ticket event")
        verbose_name_plural = _("ticket events")
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["ticket", "at"], name="event_ticket_at"),
            models.Index(fields=["kind", "at"], name="event_kind_at"),
            # The reports read a period's tickets by id range: their creation
            # records and the changes that shape their timeline, without
            # visiting the other events (messages, SLA notes) of those tickets.
            models.Index(fields=["ticket"], name="event_ticket_created", condition=models.Q(kind="created")),
            models.Index(
                fields=["ticket"],
                name="event_ticket_timeline",
                condition=models.Q(kind__in=["status", "priority", "queue", "assignee", "merged", "spam", "deleted"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.before} -> {self.after}"


class Rating(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="ratings")
    score = models.PositiveSmallIntegerField(_("score"))
    comment = models.TextField(_("comment"), blank=True)
    at = models.DateTimeField()
    external_key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        verbose_name = _("rating")
        verbose_name_plural = _("ratings")
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=1, score__lte=5), name="rating_score_1_5"),
        ]
        indexes = [models.Index(fields=["ticket", "-at"], name="rating_ticket_at")]

    def __str__(self) -> str:
        return f"{self.score}/5"
