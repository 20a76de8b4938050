"""The managers' report dashboard at /desk/reports/, its definitions page, exports and subscriptions.

Pages read stored snapshots; a period without a fresh one starts a report
job and shows its progress (polled by a small script, or a refresh link
without it). Queries per page are constant: the period's snapshot, its daily
snapshots in one query, the staleness check, the calendars and the
subscriptions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from channels_app.forum.figures import community_figures
from reports.charts import Series, legend, line_chart
from reports.exports import report_csv, report_xlsx
from reports.formatting import format_number, format_rate
from reports.labels import breakdown_labels
from reports.live import LIVE_CHANNELS
from reports.models import Frequency, JobStatus, ReportJob, ReportSnapshot, ReportSubscription
from reports.periods import Period, PeriodRefused, period_check
from reports.permissions import can_view_reports
from reports.snapshots import (
    day_snapshots,
    definitions_version,
    local_today,
    month_start,
    period_bounds,
    report_job_create,
    snapshot_is_stale,
    snapshot_latest,
)
from reports.subscriptions import report_subscription_delete, report_subscription_set
from servicedesk.accounts.auth import signed_in_user
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError
from servicedesk.kb.figures import self_service_figures
from servicedesk.sla.models import BusinessCalendar
from servicedesk.tickets.models import Channel
from servicedesk.tickets.statuses import Priority

PRESET_7 = "7d"
PRESET_30 = "30d"
PRESET_LAST_MONTH = "last_month"
PRESET_CUSTOM = "custom"
# The channels of the volume chart, in the order of their lines.
TREND_CHANNELS = ("email", "web", "chat", "phone", "api", "forum")


def manager_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Managers and admins only: visitors go to the sign-in page, agents get 403, anyone else 404."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_view_reports(request.user):
            if is_agent(request.user):
                raise PermissionDenied
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


class PeriodForm(forms.Form):
    preset = forms.ChoiceField(
        label=gettext_lazy("Period"),
        required=False,
        choices=[
            (PRESET_7, gettext_lazy("Last 7 days")),
            (PRESET_30, gettext_lazy("Last 30 days")),
            (PRESET_LAST_MONTH, gettext_lazy("Last month")),
            (PRESET_CUSTOM, gettext_lazy("Custom")),
        ],
    )
    start = forms.DateField(label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        label=gettext_lazy("Until (exclusive)"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    calendar = forms.ModelChoiceField(
        label=gettext_lazy("Calendar"),
        queryset=BusinessCalendar.objects.order_by("-is_default", "name", "pk"),
        to_field_name="slug",
        required=False,
        empty_label=None,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("preset") == PRESET_CUSTOM:
            start, end = data.get("start"), data.get("end")
            if start is None or end is None:
                raise forms.ValidationError(_("Choose both dates of a custom period."))
            calendar = data.get("calendar") or self.fields["calendar"].queryset.first()  # type: ignore[attr-defined]
            try:
                period_check(start=start, end=end, time_zone=calendar.time_zone if calendar else "UTC")
            except PeriodRefused as exc:
                self.add_error(exc.field if exc.field in ("start", "end") else None, exc.message)
        return data


@dataclass(frozen=True)
class Choice:
    calendar: BusinessCalendar
    start: date
    end: date
    preset: str

    def query(self, **extra: Any) -> str:
        params = {"calendar": self.calendar.slug, "preset": self.preset}
        if self.preset == PRESET_CUSTOM:
            params |= {"start": self.start.isoformat(), "end": self.end.isoformat()}
        return urlencode({**params, **extra})


def _choice(params: Any, now: datetime) -> tuple[PeriodForm, Choice | None]:
    """The period and calendar chosen by ``params`` (a query dict); None when invalid or no calendar exists."""
    values = {key: params.get(key) for key in ("preset", "start", "end", "calendar") if key in params}
    if not values.get("preset") and values.get("start") and values.get("end"):
        values["preset"] = PRESET_CUSTOM  # a link with dates and no preset means those dates
    form = PeriodForm(values or None)
    calendars = list(form.fields["calendar"].queryset[:1])  # type: ignore[attr-defined]
    if not calendars:
        return form, None
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    if form.is_bound and form.errors:
        return form, None
    calendar = data.get("calendar") or calendars[0]
    preset = data.get("preset") or PRESET_7
    today = local_today(calendar, now)
    if preset == PRESET_CUSTOM:
        start, end = data["start"], data["end"]
    elif preset == PRESET_30:
        start, end = today - timedelta(days=30), today
    elif preset == PRESET_LAST_MONTH:
        end = month_start(today)
        start = month_start(end - timedelta(days=1))
    else:
        start, end = today - timedelta(days=7), today
    return form, Choice(calendar=calendar, start=start, end=end, preset=preset)


def _pick(figures: dict[str, Any] | None, *path: str) -> Any:
    value: Any = figures
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _trends(choice: Choice, days: list[ReportSnapshot]) -> list[dict[str, Any]]:
    """The five trend charts from the daily snapshots (one value per day, None where missing)."""
    by_day = {snapshot.start: snapshot.figures for snapshot in days}
    dates = []
    day = choice.start
    while day < choice.end:
        dates.append(day)
        day += timedelta(days=1)

    def values(*path: str) -> list[Any]:
        return [_pick(by_day.get(d), *path) for d in dates]

    names = breakdown_labels("by_channel", list(TREND_CHANNELS))
    channels = [
        Series(label=names[channel].text, values=values("tickets", "by_channel", channel))
        for channel in TREND_CHANNELS
        if any(v for v in values("tickets", "by_channel", channel))
    ]
    backlog = [
        _pick(by_day.get(d), "backlog", "at_period_end")
        if _pick(by_day.get(d), "backlog", "at_period_end") is not None
        else _pick(by_day.get(d), "backlog", "open")
        for d in dates
    ]
    charts = [
        (_("Volume by channel"), channels, False, "volume"),
        (
            _("Median first reply (minutes)"),
            [
                Series(_("Business minutes"), values("first_reply_minutes", "business", "median")),
                Series(_("Calendar minutes"), values("first_reply_minutes", "calendar", "median")),
            ],
            False,
            "first-reply",
        ),
        (_("SLA achieved rate"), [Series(_("SLA"), values("sla", "all_targets", "rate"))], True, "sla"),
        (_("First-contact resolution rate"), [Series(_("FCR"), values("fcr", "rate"))], True, "fcr"),
        (_("Backlog at the end of the day"), [Series(_("Backlog"), backlog)], False, "backlog"),
    ]
    return [
        {
            "title": title,
            "anchor": anchor,
            "svg": line_chart(title=title, days=dates, series=series, percent=percent),
            "legend": legend(series) if len(series) > 1 else "",
        }
        for title, series, percent, anchor in charts
    ]


def _inbox_link(choice: Choice, **filters: str) -> str:
    start_utc, end_utc = period_bounds(choice.calendar, choice.start, choice.end)
    params = {
        **filters,
        "created_from": start_utc.isoformat(),
        "created_to": end_utc.isoformat(),
        "status": "new,open,pending,on_hold,solved,closed",
    }
    return reverse("desk:inbox") + "?" + urlencode(params)


def _table(figures: dict[str, Any], name: str, link: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """One row per key of breakdown ``name``, labelled for people (``reports.labels``)."""
    groups = figures.get(name) or {}
    labels = breakdown_labels(name, [str(key) for key in groups])
    rows = []
    for key, inner in groups.items():
        rows.append(
            {
                "key": key,
                "label": labels[str(key)],
                "link": link(str(key)),
                "in_scope": _pick(inner, "tickets", "in_scope"),
                "solved": _pick(inner, "tickets", "solved"),
                "first_reply": _pick(inner, "first_reply_minutes", "business", "median"),
                "first_reply_calendar": _pick(inner, "first_reply_minutes", "calendar", "median"),
                "sla": _pick(inner, "sla", "all_targets", "rate"),
                "fcr": _pick(inner, "fcr", "rate"),
                "csat": _pick(inner, "csat", "rate"),
                # Only the agent, queue and channel breakdowns have it (the survey's own keys).
                "response_rate": _pick(inner, "surveys", "response_rate"),
                "has_surveys": "surveys" in inner,
            }
        )
    if name == "by_priority":
        order = {value: rank for rank, value in enumerate(reversed(Priority.values))}  # urgent first
        rows.sort(key=lambda row: order.get(str(row["key"]), len(order)))
    else:
        rows.sort(key=lambda row: (row["label"].text.casefold(), str(row["key"])))
    return rows


TILES = (
    ("sla", gettext_lazy("SLA achieved"), ("sla", "all_targets", "rate"), "rate"),
    ("fcr", gettext_lazy("First-contact resolution"), ("fcr", "rate"), "rate"),
    (
        "first-reply",
        gettext_lazy("Median first reply (business minutes)"),
        ("first_reply_minutes", "business", "median"),
        "minutes",
    ),
    (
        "first-reply",
        gettext_lazy("Median first reply (calendar minutes)"),
        ("first_reply_minutes", "calendar", "median"),
        "minutes",
    ),
    ("csat", gettext_lazy("Customer satisfaction"), ("csat", "rate"), "rate"),
    ("backlog", gettext_lazy("Backlog"), ("backlog", "open"), "count"),
    ("abandonment", gettext_lazy("Abandonment, chat"), ("live", "chat", "abandonment_rate"), "rate"),
    ("abandonment", gettext_lazy("Abandonment, phone"), ("live", "phone", "abandonment_rate"), "rate"),
    ("csat", gettext_lazy("Survey response rate"), ("surveys", "response_rate"), "rate"),
)


@require_GET
@manager_required
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    form, choice = _choice(request.GET, now)
    context: dict[str, Any] = {"form": form, "choice": choice, "subscriptions": [], "frequencies": Frequency.choices}
    context["subscriptions"] = list(
        ReportSubscription.objects.filter(user=signed_in_user(request))
        .select_related("calendar")
        .order_by("frequency", "pk")
    )
    if choice is None:
        return render(request, "reports/dashboard.html", context, status=400 if form.errors else 200)
    job = _job_from(request)
    snapshot = snapshot_latest(calendar=choice.calendar, start=choice.start, end=choice.end)
    days = list(day_snapshots(calendar=choice.calendar, since=choice.start, until=choice.end))
    ended_days = (min(choice.end, local_today(choice.calendar, now)) - choice.start).days
    needs_job = snapshot is None or len(days) < ended_days or snapshot_is_stale(snapshot, now=now)
    if job is None and needs_job:
        job = report_job_create(
            user=request.user,
            calendar=choice.calendar,
            start=choice.start,
            end=choice.end,
            as_of=now,
            include_daily=True,
        )
        job.refresh_from_db()
    if job is not None and job.status == JobStatus.DONE and job.snapshot_id is not None and needs_job:
        # The job ran already (an eager or a fast worker): show what it stored.
        snapshot = snapshot_latest(calendar=choice.calendar, start=choice.start, end=choice.end)
        days = list(day_snapshots(calendar=choice.calendar, since=choice.start, until=choice.end))
    figures = snapshot.figures if snapshot is not None else None
    context |= {
        "job": job
        if job is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED)
        else None,
        "job_api": reverse("reports_api:job", args=[job.pk]) if job is not None else "",
        "refresh_url": "?" + choice.query(**({"job": job.pk} if job is not None else {})),
        "snapshot": snapshot,
        "figures": figures,
        "last_day": choice.end - timedelta(days=1),
        "query": choice.query(),
    }
    if figures is not None:
        context["tiles"] = [
            {"anchor": anchor, "label": label, "value": _pick(figures, *path), "kind": kind}
            for anchor, label, path, kind in TILES
        ]
        context["trends"] = _trends(choice, days)
        context["in_scope_link"] = _inbox_link(choice)
        context["queues"] = _table(figures, "by_queue", lambda key: _inbox_link(choice, queue=key))
        context["agents"] = _table(figures, "by_agent", lambda key: None)
        context["channels"] = _table(figures, "by_channel", lambda key: _inbox_link(choice, channel=key))
        context["priorities"] = _table(figures, "by_priority", lambda key: _inbox_link(choice, priority=key))
        context["tiers"] = _table(figures, "by_tier", lambda key: None)
        context["live_rows"] = _live_rows(figures)
    # Read live from the knowledge base's records (not a snapshot): searches and views change by the minute.
    period = Period(start=choice.start, end=choice.end, calendar=choice.calendar)
    context["self_service"] = self_service_figures(start=period.start_utc, end=period.end_utc, as_of=now)
    context["community"] = community_figures(start=period.start_utc, end=period.end_utc, as_of=now)
    return render(request, "reports/dashboard.html", context)


def _live_rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat and phone: their live figures (sessions) beside their FCR (tickets of that channel)."""
    live = figures.get("live") or {}
    by_channel = figures.get("by_channel") or {}
    return [
        {
            "label": Channel(channel).label,
            "figures": live.get(channel) or {},
            "fcr": _pick(by_channel, channel, "fcr", "rate"),
        }
        for channel in LIVE_CHANNELS
    ]


def _job_from(request: HttpRequest) -> ReportJob | None:
    raw = request.GET.get("job", "")
    if not raw.isdigit():
        return None
    return ReportJob.objects.filter(pk=int(raw)).first()


@require_POST
@manager_required
def run(request: HttpRequest) -> HttpResponse:
    """Compute the chosen period again now (the "recompute" button)."""
    _form, choice = _choice(request.POST, timezone.now())
    if choice is None:
        messages.error(request, _("Choose a valid period and calendar."))
        return redirect("reports:dashboard")
    job = report_job_create(
        user=request.user,
        calendar=choice.calendar,
        start=choice.start,
        end=choice.end,
        as_of=timezone.now(),
        include_daily=True,
    )
    return redirect(reverse("reports:dashboard") + "?" + choice.query(job=job.pk))


@require_GET
@manager_required
def definitions(request: HttpRequest) -> HttpResponse:
    return render(request, "reports/definitions.html", {"version": definitions_version()})


def _export_figures(request: HttpRequest) -> tuple[Choice, dict[str, Any]] | HttpResponse:
    """The figures of the period shown on the dashboard, or the response that refuses the export.

    An invalid period or calendar is a 400 with the form's errors. A period
    never computed sends the manager to the dashboard, which starts computing
    it, with a note to export once it is shown.
    """
    form, choice = _choice(request.GET, timezone.now())
    if choice is None:
        errors = [str(error) for field_errors in form.errors.values() for error in field_errors]
        text = "\n".join([str(_("Choose a valid period and calendar.")), *errors])
        return HttpResponseBadRequest(text, content_type="text/plain; charset=utf-8")
    job = _job_from(request)
    if job is not None and job.status == JobStatus.DONE and job.result is not None:
        return choice, job.result
    snapshot = snapshot_latest(calendar=choice.calendar, start=choice.start, end=choice.end)
    if snapshot is None:
        messages.info(request, _("This report is being computed. Export it once the dashboard shows it."))
        return redirect(reverse("reports:dashboard") + "?" + choice.query())
    return choice, snapshot.figures


def _filename(choice: Choice, extension: str) -> str:
    return f"report-{choice.calendar.slug}-{choice.start.isoformat()}-{choice.end.isoformat()}.{extension}"


def _export(
    request: HttpRequest, extension: str, content_type: str, render: Callable[[dict[str, Any]], Any]
) -> HttpResponse:
    """The report shown on the dashboard as a file, or the response that refuses it."""
    found = _export_figures(request)
    if isinstance(found, HttpResponse):
        return found
    choice, figures = found
    response = HttpResponse(render(figures), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{_filename(choice, extension)}"'
    return response


@require_GET
@manager_required
def export_csv(request: HttpRequest) -> HttpResponse:
    return _export(
        request, "csv", "text/csv; charset=utf-8", lambda figures: report_csv(figures, labels=breakdown_labels)
    )


@require_GET
@manager_required
def export_xlsx(request: HttpRequest) -> HttpResponse:
    return _export(
        request,
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        lambda figures: report_xlsx(figures, labels=breakdown_labels),
    )


class SubscriptionForm(forms.Form):
    frequency = forms.ChoiceField(label=gettext_lazy("Frequency"), choices=Frequency.choices)
    calendar = forms.ModelChoiceField(
        label=gettext_lazy("Calendar"), queryset=BusinessCalendar.objects.all(), to_field_name="slug"
    )


@require_POST
@manager_required
def subscribe(request: HttpRequest) -> HttpResponse:
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose weekly or monthly and a calendar."))
        return redirect("reports:dashboard")
    try:
        report_subscription_set(
            user=request.user, frequency=form.cleaned_data["frequency"], calendar=form.cleaned_data["calendar"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("You will receive this report by email."))
    return redirect("reports:dashboard")


@require_POST
@manager_required
def unsubscribe(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        report_subscription_delete(user=request.user, subscription_id=pk)
    except ApplicationError as exc:
        raise Http404 from exc
    messages.success(request, _("You will no longer receive this report."))
    return redirect("reports:dashboard")


class StaffingForm(forms.Form):
    """The staffing forecast's inputs; percentages as whole numbers."""

    calendar = forms.ModelChoiceField(
        label=gettext_lazy("Calendar"),
        queryset=BusinessCalendar.objects.order_by("-is_default", "name", "pk"),
        to_field_name="slug",
        required=False,
        empty_label=None,
    )
    channel = forms.ChoiceField(
        label=gettext_lazy("Channel"), choices=[("chat", gettext_lazy("Chat")), ("phone", gettext_lazy("Phone"))]
    )
    weeks = forms.IntegerField(label=gettext_lazy("Weeks measured"), min_value=1, max_value=26, initial=4)
    target = forms.IntegerField(label=gettext_lazy("Service level target (%)"), min_value=1, max_value=99, initial=80)
    threshold = forms.IntegerField(label=gettext_lazy("Answered within (seconds)"), min_value=1, max_value=3600)
    shrinkage = forms.IntegerField(label=gettext_lazy("Shrinkage (%)"), min_value=0, max_value=90, initial=30)
    max_occupancy = forms.IntegerField(
        label=gettext_lazy("Maximum occupancy (%)"), min_value=1, max_value=100, required=False, initial=85
    )


@require_GET
@manager_required
def staffing(request: HttpRequest) -> HttpResponse:
    """Agents needed per hour of the week, from the arrivals and handle times of the last full weeks.

    Inputs left out start from the measured data (``staffing_defaults``): the
    live channel with sessions and the weeks it has been measured. Invalid
    inputs answer 400 with the form's field errors.
    """
    from django.conf import settings

    from reports.live import LIVE_CHANNELS
    from reports.periods import Period
    from reports.staffing import LOOKBACK_WEEKS, staffing_defaults, staffing_forecast

    calendars = BusinessCalendar.objects.order_by("-is_default", "name", "pk")
    params = request.GET.copy()
    calendar = calendars.filter(slug=params.get("calendar", "")).first() or calendars.first()
    today = local_today(calendar, timezone.now()) if calendar is not None else timezone.now().date()
    this_monday = today - timedelta(days=today.weekday())
    lookback = Period(start=this_monday - timedelta(weeks=LOOKBACK_WEEKS), end=this_monday, calendar=calendar)
    measured = staffing_defaults(end_utc=lookback.end_utc, channels=LIVE_CHANNELS)
    channel = params.get("channel") or measured.channel
    defaults = {
        "channel": channel,
        "weeks": measured.weeks if channel == measured.channel else 4,
        "target": 80,
        "shrinkage": 30,
        "max_occupancy": 85,
        "threshold": settings.SERVICEDESK["LIVE_THRESHOLD_SECONDS"].get(channel, 30),
    }
    for key, value in defaults.items():
        params.setdefault(key, str(value))
    form = StaffingForm(params)
    forecast = None
    summary: list[dict[str, Any]] = []
    if form.is_valid():
        data = form.cleaned_data
        calendar = data["calendar"] or calendar
        period = Period(start=this_monday - timedelta(weeks=data["weeks"]), end=this_monday, calendar=calendar)
        forecast = staffing_forecast(
            start_utc=period.start_utc,
            end_utc=period.end_utc,
            calendar=calendar,
            channel=data["channel"],
            target_sl=data["target"] / 100,
            threshold_seconds=data["threshold"],
            shrinkage=data["shrinkage"] / 100,
            max_occupancy=data["max_occupancy"] / 100 if data["max_occupancy"] else None,
            weeks=data["weeks"],
        )
        forecast["period_start"], forecast["period_end"] = period.start, period.end
        forecast["rows"] = [
            {
                "hour": hour,
                "cells": [
                    {
                        **day["hours"][hour],
                        "service_level_shown": format_rate(day["hours"][hour]["service_level"]),
                        "occupancy_shown": format_rate(day["hours"][hour]["occupancy"]),
                    }
                    for day in forecast["days"]
                ],
            }
            for hour in range(24)
        ]
        cells = [cell for day in forecast["days"] for cell in day["hours"]]
        summary = [
            {"label": _("Contacts measured"), "value": forecast["arrivals"]},
            {"label": _("Contacts per week"), "value": format_number(forecast["arrivals"] / data["weeks"], 1)},
            {
                "label": _("Average handle time (seconds)"),
                "value": format_number(forecast["aht_seconds"], 0),
            },
            {"label": _("Most agents scheduled in one hour"), "value": max(cell["scheduled"] for cell in cells)},
            {"label": _("Agent hours scheduled per week"), "value": sum(cell["scheduled"] for cell in cells)},
        ]
    weekdays = [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]
    return render(
        request,
        "reports/staffing.html",
        {"form": form, "forecast": forecast, "summary": summary, "weekdays": weekdays},
        status=200 if forecast is not None else 400,
    )
