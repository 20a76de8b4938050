"""The workspace's own records: saved inbox views and bulk jobs (docs/inbox.md).

Neither is domain data: a saved view is a named inbox address (filters, sort,
columns), and a bulk job records a request to change many tickets, each
ticket still changed by its own service call with its own TicketEvent.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class ViewScope(models.TextChoices):
    PERSONAL = "personal", _("Only me")
    EVERYONE = "everyone", _("Everyone")
    QUEUE = "queue", _("The agents of a queue")


class SavedView(models.Model):
    """An inbox an agent named: its filters, sort and visible columns.

    Personal views belong to ``owner``; shared ones (managers and admins make
    them) have no owner and are seen by everyone, or by the agents of ``queue``.
    """

    name = models.CharField(_("name"), max_length=100)
    scope = models.CharField(_("shared with"), max_length=10, choices=ViewScope.choices, default=ViewScope.PERSONAL)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("owner"),
    )
    queue = models.ForeignKey(
        "tickets.Queue",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("queue"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    # The inbox's filter parameters as the inbox reads them (``saved_views.inbox_params_clean``).
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    sort = models.CharField(_("sort"), max_length=20, default="-updated")
    columns = models.JSONField(_("columns"), default=list, blank=True)
    created_at = models.DateTimeField(_("created"))
    updated_at = models.DateTimeField(_("updated"))

    class Meta:
        verbose_name = _("saved view")
        verbose_name_plural = _("saved views")
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope=ViewScope.PERSONAL, owner__isnull=False, queue__isnull=True)
                    | Q(scope=ViewScope.EVERYONE, owner__isnull=True, queue__isnull=True)
                    | Q(scope=ViewScope.QUEUE, owner__isnull=True, queue__isnull=False)
                ),
                name="desk_view_scope_owner_queue",
            ),
            # One name per list a view appears in: a second submit of the same form is refused, not a twin.
            models.UniqueConstraint(
                fields=["owner", "name"], condition=Q(scope=ViewScope.PERSONAL), name="desk_view_personal_name"
            ),
            models.UniqueConstraint(
                fields=["name"], condition=Q(scope=ViewScope.EVERYONE), name="desk_view_everyone_name"
            ),
            models.UniqueConstraint(
                fields=["queue", "name"], condition=Q(scope=ViewScope.QUEUE), name="desk_view_queue_name"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BulkAction(models.TextChoices):
    STATUS = "status", _("Set the status")
    ASSIGNEE = "assignee", _("Assign")
    QUEUE = "queue", _("Move to a queue")
    TAGS = "tags", _("Add or remove tags")
    PRIORITY = "priority", _("Set the priority")
    SPAM = "spam", _("Mark as spam or not spam")
    MERGE = "merge", _("Merge into one ticket")
    MACRO = "macro", _("Apply a macro")


class BulkJobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")
    FAILED = "failed", _("Failed")


BULK_JOB_ACTIVE = (BulkJobStatus.QUEUED, BulkJobStatus.RUNNING)


class BulkJob(models.Model):
    """One agent's change of many tickets, run by a worker (docs/inbox.md, "Bulk actions").

    The selection is ``ids`` (tickets ticked one by one) or ``filters`` (the
    inbox's filters, evaluated when the job runs; ``seen_count`` is the count
    the agent saw). The first run resolves it into ``ticket_ids`` and keeps
    them, so a run taken over after a lost worker goes on with the same list.
    ``done`` counts the tickets processed (changed, unchanged, refused or
    skipped); each has a ``BulkJobItem`` written in the transaction of its change.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("agent")
    )
    action = models.CharField(_("action"), max_length=10, choices=BulkAction.choices)
    # Where the agent asked (``ui`` or ``api``): the source of every TicketEvent the job writes.
    source = models.CharField(_("source"), max_length=10, default="ui")
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    ids = models.JSONField(_("tickets chosen"), null=True, blank=True)
    filters = models.JSONField(_("filters"), null=True, blank=True)
    seen_count = models.PositiveIntegerField(_("count seen"), null=True, blank=True)
    ticket_ids = models.JSONField(_("tickets to process"), null=True, blank=True)
    total = models.PositiveIntegerField(_("total"), default=0)
    done = models.PositiveIntegerField(_("processed"), default=0)
    changed = models.PositiveIntegerField(_("changed"), default=0)
    failed = models.PositiveIntegerField(_("refused"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    status = models.CharField(_("status"), max_length=10, choices=BulkJobStatus.choices, default=BulkJobStatus.QUEUED)
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"))
    # The claim of the run that processes the job (queued -> running), and its
    # last sign of life: a claim whose heartbeat is older than the lease
    # (``bulk.JOB_LEASE``) belongs to a lost worker and may be taken over.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("bulk job")
        verbose_name_plural = _("bulk jobs")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ids__isnull=False) | Q(filters__isnull=False), name="desk_bulk_job_selection"
            ),
        ]
        indexes = [
            # The inbox shows an agent's latest jobs.
            models.Index(fields=["owner", "-created_at"], name="desk_bulk_job_owner"),
            # The minute's sweep reads only the few jobs not finished.
            models.Index(
                fields=["created_at"], name="desk_bulk_job_active", condition=Q(status__in=["queued", "running"])
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pk} {self.action} {self.status}"

    @property
    def active(self) -> bool:
        return self.status in BULK_JOB_ACTIVE


class BulkOutcome(models.TextChoices):
    CHANGED = "changed", _("Changed")
    UNCHANGED = "unchanged", _("Already so")
    FAILED = "failed", _("Refused")
    SKIPPED = "skipped", _("Skipped: no longer visible to the agent")


class BulkJobItem(models.Model):
    """What a job did to one ticket; unique per job and ticket, so no ticket is processed twice."""

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items")
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(_("outcome"), max_length=10, choices=BulkOutcome.choices)
    reason = models.TextField(_("reason"), blank=True)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("bulk job ticket")
        verbose_name_plural = _("bulk job tickets")
        constraints = [models.UniqueConstraint(fields=["job", "ticket"], name="desk_bulk_item_job_ticket")]

    def __str__(self) -> str:
        return f"{self.job_id} {self.ticket_id} {self.outcome}"
