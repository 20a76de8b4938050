"""Scheduled reports: managers subscribe to the weekly or monthly report by email.

``subscriptions_send`` runs hourly from beat. For each subscription it works
out, in the subscriber's time zone (``User.time_zone``, else
``settings.TIME_ZONE``), the last complete period (a Monday-to-Sunday week, or
a calendar month) and sends it once: the period is claimed by a conditional
UPDATE of ``last_sent_period_end`` inside the transaction that sends the mail,
so two runs at once send it once, and a failed send releases the claim for
the next run.
"""

from __future__ import annotations

import logging
import zoneinfo
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from reports.exports import report_csv
from reports.labels import breakdown_labels
from reports.models import Frequency, ReportSubscription
from reports.permissions import can_view_reports
from reports.snapshots import month_start, snapshot_compute, week_start
from servicedesk.core.errors import ApplicationError, NotFound
from servicedesk.sla.models import BusinessCalendar

logger = logging.getLogger(__name__)


def user_zone(user: Any) -> zoneinfo.ZoneInfo:
    """The user's time zone, else the site's."""
    name = getattr(user, "time_zone", "") or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def last_complete_period(*, frequency: str, today: date) -> tuple[date, date]:
    """The last week (Monday start) or month that ended by local ``today``, as [start, end)."""
    if frequency == Frequency.WEEKLY:
        end = week_start(today)
        return end - timedelta(days=7), end
    end = month_start(today)
    return month_start(end - timedelta(days=1)), end


def report_subscription_set(*, user: Any, frequency: str, calendar: BusinessCalendar) -> ReportSubscription:
    """Subscribe ``user`` to the ``frequency`` report of ``calendar``.

    Errors: ``PermissionDenied``-like ``ApplicationError`` for someone who may
    not read reports; an unknown frequency. Idempotent by the unique
    (user, frequency, calendar): subscribing twice keeps one subscription.
    """
    if not can_view_reports(user):
        raise ApplicationError(_("Only managers may subscribe to reports."))
    if frequency not in Frequency.values:
        raise ApplicationError(_("Choose weekly or monthly."), field="frequency")
    subscription, _created = ReportSubscription.objects.get_or_create(user=user, frequency=frequency, calendar=calendar)
    return subscription


def report_subscription_delete(*, user: Any, subscription_id: int) -> None:
    """Unsubscribe. Errors: ``NotFound`` for another user's or an unknown subscription. Idempotent per id."""
    deleted, _rows = ReportSubscription.objects.filter(pk=subscription_id, user=user).delete()
    if not deleted:
        raise NotFound(_("There is no such subscription."))


def subscription_send(*, subscription: ReportSubscription, now: datetime) -> bool:
    """Send the subscription's last complete period if not sent yet. True when a mail went out."""
    user = subscription.user
    if not user.email or not can_view_reports(user):
        return False
    today = now.astimezone(user_zone(user)).date()
    start, end = last_complete_period(frequency=subscription.frequency, today=today)
    if subscription.last_sent_period_end is not None and subscription.last_sent_period_end >= end:
        return False
    granularity = "week" if subscription.frequency == Frequency.WEEKLY else "month"
    snapshot = snapshot_compute(
        calendar=subscription.calendar, granularity=granularity, start=start, end=end, as_of=now
    )
    with transaction.atomic():
        claimed = (
            ReportSubscription.objects.filter(pk=subscription.pk)
            .filter(Q(last_sent_period_end__isnull=True) | Q(last_sent_period_end__lt=end))
            .update(last_sent_period_end=end)
        )
        if not claimed:
            return False
        # Sent inside the claim's transaction: a failed send must leave the
        # period unclaimed so the next run tries again.
        _mail(subscription=subscription, figures=snapshot.figures, start=start, end=end)
    return True


def subscriptions_send(*, now: datetime) -> int:
    """Beat: send every subscription whose period ended and was not sent. Returns the number sent."""
    sent = 0
    for subscription in ReportSubscription.objects.select_related("user", "calendar").order_by("pk"):
        try:
            sent += subscription_send(subscription=subscription, now=now)
        except Exception:
            logger.exception("report subscription %s not sent", subscription.pk)
    return sent


def headline(figures: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(label, value, kind) of the headline figures; kind is rate, minutes or count."""

    def pick(*path: str) -> Any:
        value: Any = figures
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    live = [pick("live", channel, "abandonment_rate") for channel in ("chat", "phone")]
    return [
        (_("SLA achieved"), pick("sla", "all_targets", "rate"), "rate"),
        (_("First-contact resolution"), pick("fcr", "rate"), "rate"),
        (_("Median first reply (business minutes)"), pick("first_reply_minutes", "business", "median"), "minutes"),
        (_("Median first reply (calendar minutes)"), pick("first_reply_minutes", "calendar", "median"), "minutes"),
        (_("Customer satisfaction"), pick("csat", "rate"), "rate"),
        (_("Backlog"), pick("backlog", "open"), "count"),
        (_("Abandonment, chat"), live[0], "rate"),
        (_("Abandonment, phone"), live[1], "rate"),
    ]


def _mail(*, subscription: ReportSubscription, figures: dict[str, Any], start: date, end: date) -> None:
    user = subscription.user
    with translation.override(user.language or settings.LANGUAGE_CODE):
        last_day = end - timedelta(days=1)
        context: dict[str, Any] = {
            "user": user,
            "calendar": subscription.calendar,
            "start": start,
            "last_day": last_day,
            "headline": headline(figures),
            "frequency": subscription.get_frequency_display(),
        }
        subject = _("%(frequency)s report %(start)s to %(last_day)s") % {
            "frequency": context["frequency"],
            "start": start.isoformat(),
            "last_day": last_day.isoformat(),
        }
        text = render_to_string("reports/email/subscription.txt", context)
        html = render_to_string("reports/email/subscription.html", context)
        message = EmailMultiAlternatives(subject=subject, body=text, to=[user.email])
        message.attach_alternative(html, "text/html")
        message.attach(
            f"report-{start.isoformat()}-{end.isoformat()}.csv",
            report_csv(figures, labels=breakdown_labels),
            "text/csv",
        )
        message.send()
