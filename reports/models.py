"""Stored reports: snapshots of computed figures, on-demand jobs and email subscriptions.

A snapshot is the output of ``reports.services.report_compute`` for one period
of one calendar; ``reports.snapshots`` writes and refreshes them (see its
docstring for when a snapshot is stale).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class OrderedJSONField(models.TextField):
    """JSON kept as text, so the report's key order (docs/metrics.md#report-json) survives on every database.

    PostgreSQL's jsonb would reorder the keys; the figures are read whole and
    never queried inside, so text loses nothing.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return None if value is None else json.loads(value)

    def to_python(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, ensure_ascii=False)


class Granularity(models.TextChoices):
    DAY = "day", _("Day")
    WEEK = "week", _("Week")
    MONTH = "month", _("Month")
    CUSTOM = "custom", _("Custom period")


class ReportSnapshot(models.Model):
    """The figures of one period [start, end) (local dates of the calendar) as of ``as_of``.

    One row per (calendar, granularity, start, end, definitions version):
    recomputing replaces the figures of that row. The ``*_seen_id`` columns
    are the highest TicketEvent / Message / Rating ids that existed when the
    computation began; a newer row on a ticket of the cohort makes the
    snapshot stale.
    """

    calendar = models.ForeignKey(
        "sla.BusinessCalendar",
        on_delete=models.CASCADE,
        related_name="report_snapshots",
        verbose_name=_("calendar"),
    )
    granularity = models.CharField(_("granularity"), max_length=10, choices=Granularity.choices)
    start = models.DateField(_("start"))
    end = models.DateField(_("end (exclusive)"))
    as_of = models.DateTimeField(_("as of"))
    definitions_version = models.CharField(_("definitions version"), max_length=40)
    figures = OrderedJSONField(_("figures"), default=dict)
    computed_at = models.DateTimeField(_("computed"))
    source_changed_at = models.DateTimeField(_("latest change considered"), null=True, blank=True)
    events_seen_id = models.BigIntegerField(default=0)
    messages_seen_id = models.BigIntegerField(default=0)
    ratings_seen_id = models.BigIntegerField(default=0)
    sessions_seen_id = models.BigIntegerField(default=0)
    presence_seen_id = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("report snapshot")
        verbose_name_plural = _("report snapshots")
        ordering = ["calendar", "granularity", "start"]
        constraints = [
            models.UniqueConstraint(
                fields=["calendar", "granularity", "start", "end", "definitions_version"],
                name="reports_snapshot_period_unique",
            ),
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="reports_snapshot_start_before_end"),
        ]

    def __str__(self) -> str:
        return f"{self.calendar_id} {self.granularity} {self.start}..{self.end}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ReportJob(models.Model):
    """A report a manager asked for; a worker computes it and stores the result in a snapshot."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("requested by"),
    )
    calendar = models.ForeignKey(
        "sla.BusinessCalendar",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("calendar"),
    )
    start = models.DateField(_("start"))
    end = models.DateField(_("end (exclusive)"))
    as_of = models.DateTimeField(_("as of"))
    # Also compute the missing daily snapshots of the period (the dashboard's trend charts).
    include_daily = models.BooleanField(_("include daily snapshots"), default=False)
    status = models.CharField(_("status"), max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(_("progress (percent)"), default=0)
    error = models.TextField(_("error"), blank=True)
    result = OrderedJSONField(_("result"), null=True, blank=True)
    snapshot = models.ForeignKey(
        ReportSnapshot,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("result"),
    )
    created_at = models.DateTimeField(_("created"))
    # When a worker claimed it (queued -> running); a claim older than the lease
    # (``reports.snapshots.JOB_LEASE``) belongs to a lost worker and may be taken over.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("report job")
        verbose_name_plural = _("report jobs")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=100), name="reports_job_progress_range"),
        ]

    def __str__(self) -> str:
        return f"{self.pk} {self.start}..{self.end} {self.status}"


class Frequency(models.TextChoices):
    WEEKLY = "weekly", _("Weekly")
    MONTHLY = "monthly", _("Monthly")


class ReportSubscription(models.Model):
    """A manager receives the report of every completed week or month by email.

    ``last_sent_period_end`` is the (exclusive, local) end date of the last
    period sent; the sender claims a period by a conditional UPDATE of it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="report_subscriptions",
        verbose_name=_("user"),
    )
    frequency = models.CharField(_("frequency"), max_length=10, choices=Frequency.choices)
    calendar = models.ForeignKey(
        "sla.BusinessCalendar",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("calendar"),
    )
    last_sent_period_end = models.DateField(_("last period sent (end)"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("report subscription")
        verbose_name_plural = _("report subscriptions")
        ordering = ["user", "frequency"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "frequency", "calendar"],
                name="reports_subscription_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.frequency} {self.calendar_id}"


class CalendarInterval(models.Model):
    """One open interval [start_us, end_us) of a calendar, in microseconds since 1970 UTC.

    Working rows of one report computation (``reports.calendar_intervals``):
    written, read by the aggregation queries and removed inside the same
    transaction, under a key of their own, so they are never shared between
    computations. ``cum_before_us`` is the open time of the earlier intervals
    of the same key, so business time up to an instant is one index lookup.
    """

    calendar_key = models.CharField(max_length=64)
    start_us = models.BigIntegerField()
    end_us = models.BigIntegerField()
    cum_before_us = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["calendar_key", "start_us"], name="reports_interval_key_start")]

    def __str__(self) -> str:
        return f"{self.calendar_key} [{self.start_us}, {self.end_us})"
