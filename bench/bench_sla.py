"""SLA breach check benchmark: one run of ``sla_breach_check`` over a database of open tickets.

Runs against PostgreSQL only (``DATABASE_URL=postgres://...``). See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_bench_sla \
        .venv/bin/python bench/bench_sla.py --flush --tickets 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))
# The check instant; tickets are created over the 30 days before it, one every 30 days / N.
NOW = datetime(2025, 11, 3, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=30)
FIRST_REPLY, RESOLUTION, WARNING_PERCENT = 60, 480, 75  # minutes, calendar hours
AGENTS = 5
CUSTOMERS = 10_000


def _setup() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "servicedesk.settings.local"
    os.environ["DEBUG"] = "false"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    import django

    django.setup()


def _insert_select(model: Any, expressions: dict[str, str], source: str) -> str:
    """INSERT INTO <model table> (every concrete column) SELECT <expression per column> FROM <source>."""
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(f'"{field.column}"')
        if field.name in expressions:
            values.append(expressions[field.name])
        elif field.null:
            values.append("NULL")
        elif field.has_default() and isinstance(field.get_default(), bool | int | float):
            values.append(
                str(field.get_default()).lower() if isinstance(field.get_default(), bool) else str(field.get_default())
            )
        elif field.has_default() and isinstance(field.get_default(), str):
            values.append("'" + field.get_default().replace("'", "''") + "'")
        else:
            raise SystemExit(f"bench_sla: no value for {model.__name__}.{field.name}")
    return f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {source}"


def _target_sql(kind: str, target: int, backlog: timedelta) -> dict[str, str]:
    """A target as the engine left it at the last check before the backlog window: notices sent up to
    the cutoff, nothing evaluated after it (so the run owes everything that fell due within the window)."""
    warn = target * WARNING_PERCENT // 100
    cutoff = f"(TIMESTAMPTZ '{(NOW - backlog).isoformat()}')"
    due = f"(c + interval '{target} minutes')"
    warn_at = f"(c + interval '{warn} minutes')"
    breaches = f"({due} + interval '1 microsecond')"
    breached = f"({due} < {cutoff})"
    warned = f"({warn_at} < {cutoff})"
    return {
        "kind": f"'{kind}'",
        "state": f"CASE WHEN {breached} THEN 'breached' ELSE 'active' END",
        "minutes": str(target),
        "hours": "'calendar'",
        "warning_percent": str(WARNING_PERCENT),
        "started_at": "c",
        "due_at": due,
        "warning_at": warn_at,
        "breaches_at": breaches,
        "elapsed_seconds": "0",
        "breached_at": f"CASE WHEN {breached} THEN {due} END",
        "warning_notified_at": f"CASE WHEN {warned} THEN {warn_at} END",
        "breach_notified_at": f"CASE WHEN {breached} THEN {due} + interval '30 seconds' END",
        "next_check_at": f"CASE WHEN {breached} THEN NULL WHEN {warned} THEN {breaches} ELSE {warn_at} END",
        "evaluated_at": f"LEAST({cutoff}, c)",
    }


def build(tickets: int, backlog: timedelta) -> dict[str, Any]:
    from django.contrib.auth.models import Group
    from django.db import connection

    from servicedesk.accounts.models import User
    from servicedesk.accounts.roles import roles_sync
    from servicedesk.sla.models import BusinessCalendar, SlaPolicy, SlaTarget
    from servicedesk.tickets.models import Customer, Queue, Ticket, TicketEvent, TicketTarget

    started = time.monotonic()
    roles_sync()
    calendar = BusinessCalendar.objects.create(slug="utc", name="UTC", time_zone="UTC", is_default=True)
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=1, calendar=calendar, match={})
    SlaTarget.objects.create(
        policy=policy,
        priority="normal",
        first_reply_minutes=FIRST_REPLY,
        resolution_minutes=RESOLUTION,
        hours="calendar",
    )
    queue, _created = Queue.objects.get_or_create(slug="support", defaults={"name": "Support"})
    agents = []
    for n in range(AGENTS):
        user = User.objects.create_user(username=f"agent{n}", email=f"agent{n}@bench.example")
        user.groups.add(Group.objects.get(name="agent"))
        queue.members.add(user)
        agents.append(user.pk)
    manager = User.objects.create_user(username="manager", email="manager@bench.example")
    manager.groups.add(Group.objects.get(name="manager"))
    step_us = int(SPAN.total_seconds() * 1_000_000 // tickets)
    with connection.cursor() as cursor:
        cursor.execute(
            _insert_select(
                Customer,
                {
                    "name": "'Customer ' || g",
                    "language": "''",
                    "time_zone": "''",
                    "created_at": f"TIMESTAMPTZ '{(NOW - SPAN).isoformat()}'",
                },
                f"generate_series(1, {CUSTOMERS}) AS g",
            )
        )
        cursor.execute("SELECT min(id) FROM tickets_customer")
        first_customer = cursor.fetchone()[0]
        # Ticket g is created (N - g) steps before NOW: ticket 1 is 30 days old, ticket N just came in.
        created = f"(TIMESTAMPTZ '{NOW.isoformat()}' - ({tickets} - g) * interval '{step_us} microseconds')"
        agent_list = ",".join(str(pk) for pk in agents)
        cursor.execute(
            _insert_select(
                Ticket,
                {
                    "reference": "'SD-' || (1000 + g)",
                    "subject": "'Question ' || g",
                    "channel": "'email'",
                    "initiator": "'inbound'",
                    "status": "'new'",
                    "priority": "'normal'",
                    "customer": f"{first_customer} + g % {CUSTOMERS}",
                    "queue": str(queue.pk),
                    # Three in four assigned; the others notify the queue's agents.
                    "assignee": f"CASE WHEN g % 4 = 0 THEN NULL ELSE (ARRAY[{agent_list}])[1 + g % {AGENTS}] END",
                    "language": "''",
                    "is_spam": "false",
                    "is_deleted": "false",
                    "portal_key": "md5(g::text)",
                    "created_at": created,
                    "updated_at": created,
                    "sla_policy": str(policy.pk),
                    "sla_calendar": str(calendar.pk),
                    "sla_due_at": f"{created} + interval '{FIRST_REPLY} minutes'",
                },
                f"generate_series(1, {tickets}) AS g",
            )
        )
        source = "(SELECT id AS t, created_at AS c FROM tickets_ticket) AS s"
        cursor.execute(
            _insert_select(
                TicketEvent,
                {
                    "ticket": "t",
                    "kind": "'created'",
                    "at": "c",
                    "source": "'intake'",
                    "after": '\'{"status": "new"}\'::jsonb',
                },
                source,
            )
        )
        common = {"ticket": "t", "policy": str(policy.pk), "calendar": str(calendar.pk), "priority": "'normal'"}
        for kind, target in (("first_reply", FIRST_REPLY), ("resolution", RESOLUTION)):
            cursor.execute(_insert_select(TicketTarget, {**common, **_target_sql(kind, target, backlog)}, source))
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('tickets_ticket', 'id'), (SELECT max(id) FROM tickets_ticket))"
        )
    built = time.monotonic() - started
    connection.close()
    with connection.cursor() as cursor:
        vacuum_started = time.monotonic()
        cursor.execute("VACUUM ANALYZE")
        vacuum = time.monotonic() - vacuum_started
    return {"build_seconds": round(built, 1), "vacuum_analyze_seconds": round(vacuum, 1)}


def _explain(now: datetime) -> list[str]:
    from django.db import connection

    from servicedesk.tickets.models import TicketTarget

    query = (
        TicketTarget.objects.filter(next_check_at__lte=now)
        .order_by("next_check_at", "pk")
        .values_list("next_check_at", "pk", "ticket_id")[:500]
    )
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        return [row[0] for row in cursor.fetchall()]


def measure(runs: int) -> dict[str, Any]:
    from django.db import connection

    from servicedesk.sla import breach
    from servicedesk.sla import tasks as sla_tasks
    from servicedesk.tickets.models import TicketTarget

    # The check enqueues the notices after commit; here they are collected and sent
    # afterwards, so the check is timed alone and the sending on its own.
    collected: list[list[Any]] = []

    class Collector:
        @staticmethod
        def delay(notices: list[list[Any]]) -> None:
            collected.extend(notices)

    sla_tasks.sla_notices_send_task = Collector  # type: ignore[assignment]
    queries = 0

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    explain_before = _explain(NOW)
    results = []
    instants = [NOW, NOW] + [NOW + timedelta(minutes=n) for n in range(1, runs - 1)]
    for instant in instants:
        due = TicketTarget.objects.filter(next_check_at__lte=instant).count()
        queries = 0
        with connection.execute_wrapper(count):
            started = time.perf_counter()
            counts = breach.sla_breach_check(now=instant)
            seconds = time.perf_counter() - started
        results.append(
            {
                "now": instant.isoformat(),
                "due_rows": due,
                "seconds": round(seconds, 3),
                "queries": queries,
                **counts.as_dict(),
            }
        )
        print(
            f"  {instant:%H:%M}  due {due:>6}  {seconds:7.3f} s  {queries:>6} queries  {counts.as_dict()}", flush=True
        )
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core import mail

    mail.outbox = []
    started = time.perf_counter()
    sent = 0
    for first in range(0, len(collected), 500):
        sent += breach.sla_notices_send(notices=collected[first : first + 500])
    send_seconds = time.perf_counter() - started
    return {
        "runs": results,
        "explain": explain_before,
        "notices": {"notices": len(collected), "notifications": sent, "seconds": round(send_seconds, 2)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--backlog-minutes", type=int, default=30, help="Minutes without a check before the first run.")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--flush", action="store_true", help="Empty the database first (all its data is deleted).")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("bench_sla.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    _setup()
    from django.core.management import call_command

    from servicedesk.tickets.models import Ticket

    call_command("migrate", verbosity=0)
    if args.flush:
        call_command("flush", interactive=False, verbosity=0)
    elif Ticket.objects.exists():
        raise SystemExit("The database already holds tickets: use --flush.")
    print(f"Building {args.tickets:,} open tickets, {2 * args.tickets:,} targets ...", flush=True)
    report: dict[str, Any] = {"tickets": args.tickets, "backlog_minutes": args.backlog_minutes}
    report.update(build(args.tickets, timedelta(minutes=args.backlog_minutes)))
    print(f"  built in {report['build_seconds']} s, VACUUM ANALYZE {report['vacuum_analyze_seconds']} s", flush=True)
    report.update(measure(args.runs))
    print("\n".join(report["explain"]))
    print(f"notices: {report['notices']}")
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = OUT / f"sla-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
