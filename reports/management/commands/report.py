"""``manage.py report``: one report as JSON or a short summary, or a backfill of daily snapshots.

    manage.py report --start 2025-10-20 --end 2025-11-01 --as-of 2025-11-10T12:00:00Z [--calendar ID] [--json]
    manage.py report --backfill --since 2025-01-01 [--calendar ID]

Dates are local to the calendar, the end excluded; the default calendar when
none is named. ``--json`` prints exactly the object ``report_compute`` returns
(docs/metrics.md#report-json).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from reports.formatting import format_rate
from reports.snapshots import snapshots_backfill
from reports.subscriptions import headline
from servicedesk.core.errors import ApplicationError
from servicedesk.sla.models import BusinessCalendar


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        parsed = parse_date(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            _("%(option)s must be a date as YYYY-MM-DD, not %(value)r.") % {"option": option, "value": value}
        )
    return parsed


def _instant(value: str) -> datetime:
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            _("--as-of must be an ISO 8601 instant such as 2025-11-10T12:00:00Z, not %(value)r.") % {"value": value}
        )
    if timezone.is_naive(parsed):
        raise CommandError(_("--as-of needs a time zone offset, e.g. 2025-11-10T12:00:00Z."))
    return parsed


def _calendar(value: str | None) -> BusinessCalendar | None:
    """By slug or numeric id; None for the default calendar."""
    if not value:
        return None
    found = BusinessCalendar.objects.filter(slug=value).first()
    if found is None and value.isdigit():
        found = BusinessCalendar.objects.filter(pk=int(value)).first()
    if found is None:
        raise CommandError(_("There is no calendar %(value)s (give its identifier or id).") % {"value": value})
    return found


class Command(BaseCommand):
    help = "Compute a report for a period (dates local to the calendar, end excluded), or backfill daily snapshots."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", help="First local date, YYYY-MM-DD.")
        parser.add_argument("--end", help="Local date after the last day, YYYY-MM-DD (exclusive).")
        parser.add_argument("--as-of", dest="as_of", help="The instant the figures are evaluated at (default: now).")
        parser.add_argument("--calendar", help="Calendar identifier or id (default: the default calendar).")
        parser.add_argument("--json", action="store_true", help="Print the report object as JSON.")
        parser.add_argument("--backfill", action="store_true", help="Compute every missing or stale daily snapshot.")
        parser.add_argument("--since", help="With --backfill: the first local date, YYYY-MM-DD.")

    def handle(self, *args: Any, **options: Any) -> None:
        calendar = _calendar(options["calendar"])
        if options["backfill"]:
            self._backfill(calendar, _date(options["since"], "--since"))
            return
        start, end = _date(options["start"], "--start"), _date(options["end"], "--end")
        if start is None or end is None:
            raise CommandError(_("Give --start and --end (or --backfill --since)."))
        if start >= end:
            raise CommandError(_("--end must be after --start (the end date is excluded)."))
        as_of = _instant(options["as_of"]) if options["as_of"] else timezone.now()
        from reports import services

        try:
            report = services.report_compute(start=start, end=end, as_of=as_of, calendar=calendar)
        except (ApplicationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report, sort_keys=False, ensure_ascii=False))
            return
        period = report.get("period", {})
        self.stdout.write(
            _("Report %(start)s to %(end)s (end excluded), calendar %(calendar)s, as of %(as_of)s")
            % {
                "start": period.get("start", start),
                "end": period.get("end", end),
                "calendar": period.get("calendar", ""),
                "as_of": report.get("as_of", as_of),
            }
        )
        tickets = report.get("tickets", {})
        self.stdout.write(
            _("Tickets: %(in_scope)s in scope, %(solved)s solved, %(outbound)s outbound")
            % {
                "in_scope": tickets.get("in_scope"),
                "solved": tickets.get("solved"),
                "outbound": tickets.get("outbound"),
            }
        )
        for label, value, kind in headline(report):
            if kind == "rate" and value is not None:
                shown = format_rate(value, localize=False)
            else:
                shown = "-" if value is None else str(value)
            self.stdout.write(f"{label}: {shown}")

    def _backfill(self, calendar: BusinessCalendar | None, since: date | None) -> None:
        if since is None:
            raise CommandError(_("--backfill needs --since YYYY-MM-DD."))
        if calendar is None:
            calendar = BusinessCalendar.objects.order_by("-is_default", "name", "pk").first()
            if calendar is None:
                raise CommandError(_("Reports need a business calendar; create one first."))

        def progress(done: int, total: int) -> None:
            self.stdout.write(_("%(done)s of %(total)s days") % {"done": done, "total": total})

        count = snapshots_backfill(calendar=calendar, since=since, now=timezone.now(), progress=progress)
        self.stdout.write(_("%(count)s daily snapshots computed.") % {"count": count})
