"""``manage.py simulate_calls``: a simulated day of calls posted to a running desk, and its true figures.

    manage.py simulate_calls --date 2026-03-02 --calls-per-hour 40 --aht 300 --agents 5 --patience 60 \\
        [--hours 08:00-18:00] [--time-zone Europe/Dublin] [--seed 1] [--agent-emails a@x,b@x] \\
        [--callers N] [--to +442079460000] [--threshold 20] [--url http://127.0.0.1:8000] [--secret S] \\
        [--workers 4] [--dry-run] [--json]

The calls come from ``reports.simulation.day_simulate`` (pure and seeded);
each call's events are signed and posted in order to the generic CTI webhook
(``/api/v1/phone/events/``, docs/phone.md), the calls a few at a time. The
figures printed are the day's own, computed from what was generated, beside
Erlang C's prediction for the same load; the report of that date must show
the same figures (docs/phone.md, "Call simulator"). The first event the desk
refuses stops the run with the desk's answer, and the command exits non-zero.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from reports.formatting import NO_DATA, format_rate
from reports.live import live_thresholds, short_abandon_seconds
from reports.simulation import (
    CALLER_NUMBERS,
    LINE_NUMBER,
    DayPlan,
    SimulatedDay,
    day_simulate,
    default_callers,
    erlang_prediction,
)
from servicedesk.core.errors import ApplicationError

EVENTS_PATH = "/api/v1/phone/events/"
SIGNATURE_HEADER = "X-ServiceDesk-Signature"
# An event the desk cannot store now (503) is sent again after its Retry-After, this many times in all.
ATTEMPTS = 4
RETRY_AFTER_MAX_SECONDS = 30
TIMEOUT_SECONDS = 30
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class PostFailed(Exception):
    """An event the desk refused, or a desk that could not be reached: the message says which and why."""


def signature(body: bytes, secret: str, stamp: int) -> str:
    """``X-ServiceDesk-Signature`` for ``body`` at ``stamp`` (unix seconds): HMAC-SHA256 of "<t>.<body>"."""
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def event_post(url: str, secret: str, event: dict[str, Any]) -> str:
    """Post one event signed now; the desk's outcome (``stored`` or ``duplicate``), else PostFailed."""
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    for attempt in range(1, ATTEMPTS + 1):
        request = urllib.request.Request(  # noqa: S310 (the desk's address, http or https, checked by the command)
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature(body, secret, int(time.time()))},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                return str(json.loads(response.read() or b"{}").get("outcome", "stored"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()
            if exc.code == 503 and attempt < ATTEMPTS:
                time.sleep(_retry_after(exc.headers.get("Retry-After")))
                continue
            raise PostFailed(_refusal(event, exc.code, detail)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PostFailed(
                _("Could not reach the desk at %(url)s: %(reason)s.") % {"url": url, "reason": reason}
            ) from None
    raise AssertionError("unreachable")


def _retry_after(value: str | None) -> float:
    try:
        return min(RETRY_AFTER_MAX_SECONDS, max(1.0, float(value or 5)))
    except ValueError:
        return 5.0


def _refusal(event: dict[str, Any], status: int, detail: str) -> str:
    text = _("The desk refused the %(event)s event of call %(call_id)s at %(at)s: HTTP %(status)s %(detail)s") % {
        "event": event["event"],
        "call_id": event["call_id"],
        "at": event["at"],
        "status": status,
        "detail": detail[:500],
    }
    hints = {
        401: _("Check --secret: it must be the line's secret (SD_PHONE_WEBHOOK_SECRET for the default line)."),
        404: _("Check --to: the number is not the signing line's."),
        429: _("Too many refused signatures from this address: check --secret and try again in a minute."),
    }
    return f"{text}\n{hints[status]}" if status in hints else text


def _day(value: str) -> date:
    try:
        parsed = parse_date(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(_("--date must be a date as YYYY-MM-DD, not %(value)r.") % {"value": value})
    return parsed


def _hours(value: str) -> tuple[int, int]:
    """``HH:MM-HH:MM`` as minutes after local midnight; the end may be 24:00."""
    match = _HOURS.match(value.strip())
    if match:
        start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
        opens, closes = start_h * 60 + start_m, end_h * 60 + end_m
        if start_h < 24 and end_h <= 24 and start_m < 60 and end_m < 60 and opens < closes <= 24 * 60:
            return opens, closes
    raise CommandError(
        _("--hours must be two times of the day, the first earlier, such as 08:00-18:00 or 00:00-24:00, not %(value)r.")
        % {"value": value}
    )


def _patience(value: str) -> float | None:
    if value.strip().lower() in ("inf", "never"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 and math.isfinite(seconds)):
        raise CommandError(
            _("--patience must be the callers' mean patience in seconds, above 0, or 'inf', not %(value)r.")
            % {"value": value}
        )
    return seconds


def _desk_time_zone() -> str:
    """The zone the reports bound a day in: the default calendar's, else the first calendar's, else UTC."""
    from reports.snapshots import calendar_resolve

    try:
        return calendar_resolve(None).time_zone
    except ApplicationError:
        return "UTC"
    except DatabaseError as exc:
        raise CommandError(
            _("Could not read the desk's calendar from this installation's database (%(error)s): give --time-zone.")
            % {"error": exc}
        ) from None


def _desk_agents(count: int) -> list[str]:
    """The email addresses of the first ``count`` active agents (role agent, by id) of this installation's database."""
    from servicedesk.accounts.models import User
    from servicedesk.accounts.roles import AGENT

    try:
        emails = list(
            User.objects.filter(is_active=True, groups__name=AGENT)
            .exclude(email="")
            .order_by("pk")
            .values_list("email", flat=True)[:count]
        )
    except DatabaseError as exc:
        raise CommandError(
            _("Could not read the agents from this installation's database (%(error)s): give --agent-emails.")
            % {"error": exc}
        ) from None
    if len(emails) < count:
        raise CommandError(
            _(
                "This installation's database has %(found)s active agents with an email address, fewer than "
                "--agents %(count)s: give --agent-emails."
            )
            % {"found": len(emails), "count": count}
        )
    return emails


def _seconds(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.2f} s"


def _rate(value: float | None) -> str:
    return format_rate(value, localize=False)


class Command(BaseCommand):
    help = (
        "Post a simulated day of phone calls (signed generic CTI events) to a running desk, and print the "
        "day's true figures beside Erlang C's prediction (docs/phone.md, 'Call simulator')."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", required=True, help="The local date to simulate, YYYY-MM-DD.")
        parser.add_argument(
            "--hours", default="00:00-24:00", help="Opening hours, local HH:MM-HH:MM (default 00:00-24:00)."
        )
        parser.add_argument(
            "--time-zone",
            dest="time_zone",
            help="IANA zone of the date and hours (default: the zone the desk's reports use, from its calendar).",
        )
        parser.add_argument(
            "--calls-per-hour", dest="calls_per_hour", type=float, required=True, help="Mean arrivals an hour."
        )
        parser.add_argument("--aht", type=float, required=True, help="Mean handle time, seconds.")
        parser.add_argument(
            "--patience", required=True, help="Callers' mean patience, seconds ('inf': they never give up)."
        )
        parser.add_argument("--agents", type=int, help="How many agents answer (default: as many as --agent-emails).")
        parser.add_argument(
            "--agent-emails",
            dest="agent_emails",
            help="Comma-separated agents' email addresses (default: the first active agents of this database).",
        )
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1): a run is reproducible.")
        parser.add_argument(
            "--callers",
            type=int,
            help=f"How many numbers call (1 to {CALLER_NUMBERS}; default twice the expected calls).",
        )
        parser.add_argument("--to", default=LINE_NUMBER, help=f"The line's number (default {LINE_NUMBER}).")
        parser.add_argument(
            "--threshold",
            type=int,
            help="Service level threshold, seconds (default: the phone threshold of the reports' settings).",
        )
        parser.add_argument("--url", help="The desk's address (default: SITE_URL).")
        parser.add_argument("--secret", help="The line's secret (default: SD_PHONE_WEBHOOK_SECRET).")
        parser.add_argument("--workers", type=int, default=4, help="Calls posted at once (1 to 16, default 4).")
        parser.add_argument("--dry-run", dest="dry_run", action="store_true", help="Print the figures, post nothing.")
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["workers"] <= 16:
            raise CommandError(_("--workers must be between 1 and 16."))
        plan = self._plan(options)
        simulated = day_simulate(plan)
        posted: dict[str, int] | None = None
        if not options["dry_run"]:
            url, secret = self._target(options)
            self._check_in_the_past(simulated)
            posted = self._post(simulated, url, secret, options["workers"])
        prediction = erlang_prediction(
            calls_per_hour=plan.calls_per_hour,
            aht_seconds=plan.aht_seconds,
            agents=len(plan.agents),
            threshold_seconds=plan.threshold_seconds,
        )
        if options["json"]:
            self.stdout.write(json.dumps(self._as_json(simulated, prediction, posted), ensure_ascii=False))
        else:
            self._print(simulated, prediction, posted, options)

    # --- the plan --------------------------------------------------------------------

    def _plan(self, options: dict[str, Any]) -> DayPlan:
        day = _day(options["date"])
        opens, closes = _hours(options["hours"])
        time_zone = options["time_zone"] or _desk_time_zone()
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CommandError(
                _("--time-zone must be an IANA zone such as Europe/Dublin, not %(value)r.") % {"value": time_zone}
            ) from None
        calls_per_hour, aht = options["calls_per_hour"], options["aht"]
        for name, value in (("--calls-per-hour", calls_per_hour), ("--aht", aht)):
            if not (value > 0 and math.isfinite(value)):
                raise CommandError(_("%(option)s must be a number above 0.") % {"option": name})
        agents = self._agents(options)
        callers = options["callers"]
        if callers is None:
            callers = default_callers(calls_per_hour, (closes - opens) / 60)
        if not 1 <= callers <= CALLER_NUMBERS:
            raise CommandError(_("--callers must be between 1 and %(most)s.") % {"most": CALLER_NUMBERS})
        threshold = options["threshold"] if options["threshold"] is not None else live_thresholds()["phone"]
        if threshold < 0:
            raise CommandError(_("--threshold must not be negative."))
        return DayPlan(
            day=day,
            time_zone=time_zone,
            opens=opens,
            closes=closes,
            calls_per_hour=calls_per_hour,
            aht_seconds=aht,
            patience_seconds=_patience(options["patience"]),
            agents=tuple(agents),
            seed=options["seed"],
            callers=callers,
            threshold_seconds=threshold,
            short_abandon_seconds=short_abandon_seconds(),
            line_number=options["to"],
        )

    def _agents(self, options: dict[str, Any]) -> list[str]:
        count = options["agents"]
        if options["agent_emails"]:
            emails = [email.strip() for email in options["agent_emails"].split(",") if email.strip()]
            if len({email.lower() for email in emails}) != len(emails):
                raise CommandError(_("--agent-emails names an agent twice."))
            if count is not None and count != len(emails):
                raise CommandError(
                    _("--agents %(count)s but --agent-emails names %(named)s agents.")
                    % {"count": count, "named": len(emails)}
                )
            if not emails:
                raise CommandError(_("--agent-emails names no agent."))
            return emails
        if count is None:
            raise CommandError(_("Give --agents, --agent-emails or both."))
        if count < 1:
            raise CommandError(_("--agents must be at least 1."))
        return _desk_agents(count)

    def _target(self, options: dict[str, Any]) -> tuple[str, str]:
        base = (options["url"] or settings.SITE_URL).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise CommandError(_("--url must be the desk's http or https address, not %(value)r.") % {"value": base})
        secret = options["secret"] or settings.SERVICEDESK.get("PHONE_WEBHOOK_SECRET") or ""
        if not secret:
            raise CommandError(_("Give --secret, or set SD_PHONE_WEBHOOK_SECRET: events are signed with it."))
        return base + EVENTS_PATH, secret

    def _check_in_the_past(self, simulated: SimulatedDay) -> None:
        """The report must see every call ended: the day's last event may not lie ahead of now."""
        if not simulated.events:
            return
        last = simulated.events[-1]["at"]
        instant = parse_datetime(last)
        if instant is not None and instant > timezone.now():
            raise CommandError(
                _("The simulated day ends at %(at)s, after now: choose a date whose calls are all over.") % {"at": last}
            )

    # --- posting ---------------------------------------------------------------------

    def _post(self, simulated: SimulatedDay, url: str, secret: str, workers: int) -> dict[str, int]:
        """Each call's events in order, ``workers`` calls at a time; stops at the first refusal."""
        by_call: dict[str, list[dict[str, Any]]] = {}
        for event in simulated.events:
            by_call.setdefault(event["call_id"], []).append(event)
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        stop = threading.Event()
        failures: list[PostFailed] = []

        def send(events: list[dict[str, Any]]) -> None:
            for event in events:
                if stop.is_set():
                    return
                try:
                    outcome = event_post(url, secret, event)
                except PostFailed as exc:
                    with lock:
                        failures.append(exc)
                    stop.set()
                    return
                with lock:
                    outcomes[outcome] += 1

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(send, events) for events in by_call.values()]:
                future.result()
        if failures:
            raise CommandError(
                _("%(reason)s\n%(posted)s of %(total)s events were posted before the run stopped.")
                % {"reason": failures[0], "posted": sum(outcomes.values()), "total": len(simulated.events)}
            )
        return {"stored": outcomes["stored"], "duplicate": outcomes["duplicate"]}

    # --- output ----------------------------------------------------------------------

    def _as_json(
        self, simulated: SimulatedDay, prediction: dict[str, Any], posted: dict[str, int] | None
    ) -> dict[str, Any]:
        plan = simulated.plan
        return {
            "date": plan.day.isoformat(),
            "time_zone": plan.time_zone,
            "hours": [_clock(plan.opens), _clock(plan.closes)],
            "seed": plan.seed,
            "calls_per_hour": plan.calls_per_hour,
            "aht_seconds": plan.aht_seconds,
            "patience_seconds": plan.patience_seconds,
            "agents": list(plan.agents),
            "events": len(simulated.events),
            "posted": posted,
            **simulated.figures,
            "erlang_c": prediction,
        }

    def _print(
        self,
        simulated: SimulatedDay,
        prediction: dict[str, Any],
        posted: dict[str, int] | None,
        options: dict[str, Any],
    ) -> None:
        plan = simulated.plan
        phone = simulated.figures["live"]["phone"]
        occupancy = simulated.figures["occupancy"]
        callers = simulated.figures["callers"]
        hours = f"{_clock(plan.opens)}-{_clock(plan.closes)}"
        write = self.stdout.write
        write(
            _(
                "Simulated %(date)s, %(hours)s %(zone)s, seed %(seed)s: %(rate)s calls an hour, AHT %(aht)s s, "
                "%(agents)s agents, mean patience %(patience)s."
            )
            % {
                "date": plan.day.isoformat(),
                "hours": hours,
                "zone": plan.time_zone,
                "seed": plan.seed,
                "rate": f"{plan.calls_per_hour:g}",
                "aht": f"{plan.aht_seconds:g}",
                "agents": len(plan.agents),
                "patience": _("never gives up") if plan.patience_seconds is None else f"{plan.patience_seconds:g} s",
            }
        )
        if posted is None:
            write(_("Dry run: %(events)s events, none posted.") % {"events": len(simulated.events)})
        else:
            write(
                _("Posted %(events)s events to %(url)s: %(stored)s stored, %(duplicate)s already there.")
                % {
                    "events": len(simulated.events),
                    "url": (options["url"] or settings.SITE_URL).rstrip("/") + EVENTS_PATH,
                    "stored": posted["stored"],
                    "duplicate": posted["duplicate"],
                }
            )
        threshold = {"threshold": plan.threshold_seconds}
        write("")
        write(_("The day's true figures (the report for %(date)s shows the same):") % {"date": plan.day.isoformat()})
        lines = [
            (_("Calls offered"), str(phone["offered"])),
            (_("Answered"), str(phone["answered"])),
            (_("Abandoned"), str(phone["abandoned"])),
            (
                _("Short abandons (under %(seconds)s s)") % {"seconds": plan.short_abandon_seconds},
                str(phone["short_abandoned"]),
            ),
            (_("Service level (%(threshold)s s)") % threshold, _rate(phone["service_level"])),
            (_("Service level of offered calls (%(threshold)s s)") % threshold, _rate(phone["service_level_offered"])),
            (_("Average speed of answer"), _seconds(phone["asa_seconds"])),
            (_("Abandonment rate"), _rate(phone["abandonment_rate"])),
            (_("Abandonment rate, short abandons included"), _rate(phone["abandonment_rate_raw"])),
            (_("Average handle time"), _seconds(phone["aht_seconds"])),
            (_("Occupancy (agents ready %(hours)s)") % {"hours": hours}, _rate(occupancy["team"])),
        ]
        for agent, value in occupancy["by_agent"].items():
            lines.append(("  " + agent, _rate(value)))
        lines.append(
            (
                _("Callers"),
                _("%(numbers)s numbers, %(again)s of them called more than once")
                % {"numbers": callers["numbers"], "again": callers["called_again"]},
            )
        )
        lines.append(
            (_("First-contact resolution"), _("not computed: it counts solved tickets, and calls alone solve none"))
        )
        for label, value in lines:
            write(f"  {label}: {value}")
        write("")
        write(
            _("Erlang C for the same load (%(load)s erlangs; its callers never give up):")
            % {"load": f"{prediction['load']:g}"}
        )
        for label, value in (
            (_("Probability of waiting"), _rate(prediction["probability_wait"])),
            (_("Service level (%(threshold)s s)") % threshold, _rate(prediction["service_level"])),
            (_("Average speed of answer"), _seconds(prediction["asa_seconds"])),
            (_("Occupancy"), _rate(prediction["occupancy"])),
        ):
            write(f"  {label}: {value}")


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
