"""Reports benchmark: a year of history (1,000,000 tickets), one month's report and the daily backfill.

Runs against PostgreSQL only (``DATABASE_URL=postgres://...``). See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_bench_reports \
        .venv/bin/python bench/bench_reports.py --flush
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
import zoneinfo
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_foundation import _iso

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
ZONE = zoneinfo.ZoneInfo("Europe/Dublin")

CUSTOMERS_PER_TICKET = 0.2  # 200,000 customers for 1,000,000 tickets
ORGANIZATIONS = 5000
# Queues and their agents (a0..a49); chat and phone tickets go to "live".
QUEUE_AGENTS = {"support": range(0, 20), "billing": range(20, 30), "technical": range(30, 40), "live": range(40, 50)}
AGENTS = 50
MANAGERS = 2
# The importer accepts the channels of HISTORY_FORMAT.md (no "api").
CHANNEL_WEIGHTS = (("email", 40), ("web", 25), ("chat", 15), ("phone", 12), ("forum", 8))
TOPIC_WEIGHTS = (("billing", 25), ("technical", 30), ("account", 25), ("other", 20))
PRIORITY_WEIGHTS = (("low", 15), ("normal", 60), ("high", 20), ("urgent", 5))
SCORES = ((5, 50), (4, 25), (3, 10), (2, 7), (1, 8))
SLA_TARGETS = {
    "urgent": {"first_reply": 60, "resolution": 240, "hours": "calendar"},
    "high": {"first_reply": 120, "resolution": 480, "hours": "business"},
    "normal": {"first_reply": 240, "resolution": 1440, "hours": "business"},
    "low": {"first_reply": 480, "resolution": 2880, "hours": "business"},
}
# Tickets per hour of a local weekday (relative), 0..23.
HOUR_PROFILE = (1, 1, 1, 1, 1, 2, 3, 6, 12, 16, 17, 16, 13, 14, 16, 15, 13, 10, 7, 5, 4, 3, 2, 1)
WEEKEND_PROFILE = (2, 1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 7, 7, 7, 6, 6, 5, 5, 4, 4, 3, 2)
BODY_CUSTOMER = "Hello, I have a question about my order and my invoice. Could you help me please?"
BODY_AGENT = "Thanks for getting in touch. I have looked into it and updated your account; all set now."


def _pick(rng: random.Random, weights: tuple[tuple, ...]) -> Any:
    return rng.choices([w[0] for w in weights], [w[1] for w in weights])[0]


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def _first_monday(year: int, month: int) -> date:
    day = date(year, month, 1)
    return day + timedelta(days=(7 - day.weekday()) % 7)


def irish_holidays(years: range) -> list[date]:
    """Irish public holidays (the usual ones; St Brigid's day as the first Monday of February)."""
    days: list[date] = []
    for year in years:
        last_october = date(year, 10, 31) - timedelta(days=(date(year, 10, 31).weekday()) % 7)
        days += [
            date(year, 1, 1),
            _first_monday(year, 2),
            date(year, 3, 17),
            _easter(year) + timedelta(days=1),
            _first_monday(year, 5),
            _first_monday(year, 6),
            _first_monday(year, 8),
            last_october,
            date(year, 12, 25),
            date(year, 12, 26),
        ]
    return sorted(days)


def _local(day: date, seconds: float) -> datetime:
    """The UTC instant of ``seconds`` after local midnight of ``day`` in Dublin (wall clock)."""
    wall = datetime(day.year, day.month, day.day, tzinfo=ZONE) + timedelta(seconds=seconds)
    return wall.replace(tzinfo=ZONE).astimezone(UTC)


def year_history_write(
    path: Path, *, tickets: int, first_day: date, days: int, now: datetime, seed: int = 11
) -> Counter:
    """Write a year of desk history in HISTORY_FORMAT.md to ``path``, streaming; returns records per kind.

    Tickets arrive over the local days [first_day, first_day + days) with a
    weekday/hour profile; each ticket's records follow it in the file (so every
    reference points backwards) and records after ``now`` are left out, as a
    live desk's recent tickets are still in progress.
    """
    rng = random.Random(seed)
    counts: Counter = Counter()
    holidays = irish_holidays(range(first_day.year, first_day.year + 3))
    holiday_set = set(holidays)
    customers = max(10, int(tickets * CUSTOMERS_PER_TICKET))
    ticket_no = 0
    session_no = 0
    last_open_ticket: dict[int, int] = {}  # customer -> a ticket of theirs not merged away
    with path.open("w", encoding="utf-8") as out:

        def emit(record: dict) -> None:
            out.write(json.dumps(record, separators=(",", ":")))
            out.write("\n")
            counts[record["kind"]] += 1

        hours = {d: [["09:00", "17:30"]] for d in ("mon", "tue", "wed", "thu", "fri")}
        emit(
            {
                "kind": "calendar",
                "id": "dublin",
                "timezone": "Europe/Dublin",
                "hours": hours,
                "holidays": [d.isoformat() for d in holidays],
                "default": True,
            }
        )
        emit(
            {
                "kind": "sla_policy",
                "id": "standard",
                "rank": 1,
                "calendar": "dublin",
                "match": {"initiator": "inbound"},
                "targets": SLA_TARGETS,
            }
        )
        for n in range(MANAGERS):
            emit(
                {
                    "kind": "agent",
                    "id": f"m{n}",
                    "email": f"manager{n}@reports.example",
                    "name": f"Manager {n}",
                    "role": "manager",
                }
            )
        for n in range(AGENTS):
            emit(
                {
                    "kind": "agent",
                    "id": f"a{n}",
                    "email": f"agent{n}@reports.example",
                    "name": f"Agent {n}",
                    "role": "agent",
                }
            )
        for c in range(customers):
            record: dict = {
                "kind": "customer",
                "id": f"c{c}",
                "name": f"Customer {c}",
                "emails": [f"customer{c}@example.com"],
            }
            if c % 3 == 0:
                record["phones"] = [f"+35386{c:07d}"]
            if c % 10 < 3:
                org = c % ORGANIZATIONS
                record["organization"] = f"Org {org}"
                record["tier"] = "vip" if org % 20 == 0 else "premium" if org % 5 == 0 else "standard"
            emit(record)

        # Tickets per local day: weekdays 1.0, weekends 0.3, holidays 0.4, a gentle seasonal swing.
        all_days = [first_day + timedelta(days=i) for i in range(days)]
        weights = []
        for i, day in enumerate(all_days):
            w = 1.0 if day.weekday() < 5 else 0.3
            if day in holiday_set:
                w = 0.4
            weights.append(w * (1 + 0.2 * math.sin(2 * math.pi * i / 365)))
        total_w = sum(weights)
        per_day = [int(tickets * w / total_w) for w in weights]
        for i in range(tickets - sum(per_day)):
            per_day[i % days] += 1

        month_seen: set[tuple[int, int]] = set()
        for day, n_day in zip(all_days, per_day, strict=True):
            if (day.year, day.month) not in month_seen:
                month_seen.add((day.year, day.month))
                following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
                emit(
                    {
                        "kind": "cost",
                        "period_start": day.replace(day=1).isoformat(),
                        "period_end": following.isoformat(),
                        "amount": f"{AGENTS * 4200 + day.month * 37}.00",
                        "currency": "EUR",
                    }
                )
            if day.weekday() < 5 and day not in holiday_set:
                for n in range(AGENTS):
                    for seconds, state in (
                        (9 * 3600, "ready"),
                        (12.5 * 3600, "not_ready"),
                        (13.25 * 3600, "ready"),
                        (17.5 * 3600, "offline"),
                    ):
                        at = _local(day, seconds + rng.randint(-300, 300))
                        if at <= now:
                            emit({"kind": "presence", "agent": f"a{n}", "at": _iso(at), "state": state})
            profile = HOUR_PROFILE if day.weekday() < 5 and day not in holiday_set else WEEKEND_PROFILE
            arrivals = sorted(rng.choices(range(24), profile)[0] * 3600 + rng.random() * 3600 for _ in range(n_day))
            for seconds in arrivals:
                created = _local(day, seconds)
                if created > now:
                    continue
                session_no = _ticket_write(
                    emit,
                    rng,
                    number=ticket_no,
                    created=created,
                    customers=customers,
                    now=now,
                    last_open_ticket=last_open_ticket,
                    session_no=session_no,
                )
                ticket_no += 1
    return counts


def _ticket_write(
    emit,
    rng: random.Random,
    *,
    number: int,
    created: datetime,
    customers: int,
    now: datetime,
    last_open_ticket: dict[int, int],
    session_no: int,
) -> int:
    """One ticket and its records in time order, stopping at ``now``; returns the next session number."""
    customer_no = min(customers - 1, int(customers * rng.random() ** 1.6))
    customer = f"c{customer_no}"
    ticket = f"T{number}"
    channel = _pick(rng, CHANNEL_WEIGHTS)
    topic = _pick(rng, TOPIC_WEIGHTS)
    live = channel in ("chat", "phone")
    queue = "live" if live else {"billing": "billing", "technical": "technical"}.get(topic, "support")
    agents = QUEUE_AGENTS[queue]
    agent = f"a{rng.choice(agents)}"
    outbound = not live and rng.random() < 0.03
    record: dict = {
        "kind": "ticket",
        "id": ticket,
        "at": _iso(created),
        "channel": channel,
        "initiator": "outbound" if outbound else "inbound",
        "customer": customer,
        "subject": f"Question {number} about {topic}",
        "topic": topic,
        "priority": _pick(rng, PRIORITY_WEIGHTS),
        "queue": queue,
    }
    if outbound:
        record["agent"] = agent
    previous = last_open_ticket.get(customer_no)
    if previous is not None and rng.random() < 0.02:
        record["same_issue_as"] = f"T{previous}"
    if rng.random() < 0.005:
        record["spam"] = True
    emit(record)
    seq = 0

    def message(at: datetime, kind: str, status: str | None = None) -> bool:
        nonlocal seq
        if at > now:
            return False
        body = BODY_CUSTOMER if kind == "public_enduser" else BODY_AGENT
        rec = {
            "kind": "message",
            "id": f"m{number}-{seq}",
            "ticket": ticket,
            "at": _iso(at),
            "type": kind,
            "author": customer if kind == "public_enduser" else agent,
            "body": body,
        }
        if status:
            rec["status"] = status
        seq += 1
        emit(rec)
        return True

    def event(rec: dict) -> bool:
        at: str = rec.get("at") or rec.get("ended_at") or rec["abandoned_at"]
        if datetime.fromisoformat(at) > now:
            return False
        emit(rec)
        return True

    # Opening message.
    if outbound:
        message(created, "public_agent", "pending")
    else:
        message(created, "public_enduser")
    # Merged duplicates: 1 % of tickets whose customer has an earlier ticket.
    if previous is not None and not outbound and rng.random() < 0.01:
        event(
            {
                "kind": "merge",
                "ticket": ticket,
                "into": f"T{previous}",
                "at": _iso(created + timedelta(minutes=rng.randint(5, 240))),
            }
        )
        return session_no
    last_open_ticket[customer_no] = number

    if live and rng.random() < 0.37:
        session_no += 1
        wait = rng.choice((5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300))
        answered = created + timedelta(seconds=wait)
        ended = answered + timedelta(seconds=rng.randint(120, 900 if channel == "chat" else 600))
        if ended <= now:
            event(
                {
                    "kind": "session",
                    "id": f"S{session_no}",
                    "channel": channel,
                    "customer": customer,
                    "ticket": ticket,
                    "requested_at": _iso(created),
                    "answered_at": _iso(answered),
                    "agent": agent,
                    "ended_at": _iso(ended),
                    "after_work_seconds": rng.randint(20, 180),
                }
            )
    if live and rng.random() < 0.04:
        session_no += 1
        requested = created - timedelta(minutes=rng.randint(5, 60))
        event(
            {
                "kind": "session",
                "id": f"S{session_no}",
                "channel": channel,
                "customer": customer,
                "requested_at": _iso(requested),
                "abandoned_at": _iso(requested + timedelta(seconds=rng.randint(2, 400))),
            }
        )

    if rng.random() < 0.88 or live:
        event(
            {
                "kind": "assign",
                "ticket": ticket,
                "at": _iso(created + timedelta(seconds=rng.randint(20, 1800 if not live else 60))),
                "agent": agent,
            }
        )
    if rng.random() < 0.08:
        event(
            {
                "kind": "priority",
                "ticket": ticket,
                "at": _iso(created + timedelta(minutes=rng.randint(10, 120))),
                "priority": _pick(rng, PRIORITY_WEIGHTS),
            }
        )
    if outbound:
        reply_at = created + timedelta(hours=rng.lognormvariate(math.log(20), 0.8))
        if message(reply_at, "public_enduser", "open"):
            message(reply_at + timedelta(hours=rng.lognormvariate(math.log(3), 1.0)), "public_agent", "solved")
        return session_no
    if rng.random() < 0.06:  # never answered (yet)
        return session_no
    if live:
        first = created + timedelta(minutes=rng.uniform(1, 12))
    else:
        first = created + timedelta(hours=min(96.0, rng.lognormvariate(math.log(3), 1.1)))
    solved_at = None
    if rng.random() < (0.7 if live else 0.45):
        if not message(first, "public_agent", "solved"):
            return session_no
        solved_at = first
    else:
        if not message(first, "public_agent", "pending"):
            return session_no
        back = first + timedelta(hours=rng.lognormvariate(math.log(20), 0.9))
        if rng.random() < 0.8:
            if not message(back, "public_enduser", "open"):
                return session_no
            if rng.random() < 0.2:
                message(back + timedelta(minutes=rng.randint(5, 60)), "internal")
            second = back + timedelta(hours=min(96.0, rng.lognormvariate(math.log(4), 1.0)))
            if rng.random() < 0.85:
                if not message(second, "public_agent", "solved"):
                    return session_no
                solved_at = second
            else:
                if not message(second, "public_agent", "pending"):
                    return session_no
                solved_at = second + timedelta(days=2)
                if not event(
                    {"kind": "status", "ticket": ticket, "at": _iso(solved_at), "status": "solved", "by": agent}
                ):
                    return session_no
        else:
            solved_at = first + timedelta(days=4)
            if not event({"kind": "status", "ticket": ticket, "at": _iso(solved_at), "status": "solved"}):
                return session_no
    if rng.random() < 0.06:  # reopened
        again = solved_at + timedelta(hours=rng.uniform(2, 120))
        if message(again, "public_enduser", "open"):
            solved_at = again + timedelta(hours=min(96.0, rng.lognormvariate(math.log(3), 1.0)))
            if not message(solved_at, "public_agent", "solved"):
                return session_no
        else:
            return session_no
    if rng.random() < 0.2:
        event(
            {
                "kind": "rating",
                "ticket": ticket,
                "at": _iso(solved_at + timedelta(hours=rng.uniform(1, 48))),
                "score": _pick(rng, SCORES),
                "comment": "",
            }
        )
    return session_no


# --- child processes -----------------------------------------------------------


def _status_kb(status_file: Path, fields: tuple[str, ...]) -> dict[str, int]:
    """The given ``/proc/<pid>/status`` fields in kB (missing when the process is gone)."""
    values = {}
    try:
        for line in status_file.read_text().splitlines():
            name = line.split(":", 1)[0]
            if name in fields:
                values[name] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return values


def _database_backends(database: str) -> list[Path]:
    """The status files of the PostgreSQL server processes serving ``database`` on this machine."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if text.startswith("postgres: ") and f" {database} " in text:
            found.append(cmdline.parent / "status")
    return found


def child_run(argv: list[str], *, env: dict[str, str], log: Path) -> dict:
    """Run ``argv`` in a child process (output to ``log``), sampling its peak resident memory (VmHWM).

    Also sampled: the PostgreSQL server processes of the benchmark's database
    (the child's sessions; the parent holds none while the child runs), their
    peak resident memory (which includes the shared buffers they touched) and
    the peak of their private memory (RssAnon, sampled every 0.1 s).
    """
    database = env["DATABASE_URL"].rsplit("/", 1)[-1]
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as handle:
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
        peak_kb = db_peak_kb = db_private_kb = 0
        status_file = Path(f"/proc/{child.pid}/status")
        backends: list[Path] = []
        polls = 0
        while child.poll() is None:
            peak_kb = max(peak_kb, _status_kb(status_file, ("VmHWM",)).get("VmHWM", 0))
            if polls % 10 == 0:
                backends = _database_backends(database)
            for backend in backends:
                values = _status_kb(backend, ("VmHWM", "RssAnon"))
                db_peak_kb = max(db_peak_kb, values.get("VmHWM", 0))
                db_private_kb = max(db_private_kb, values.get("RssAnon", 0))
            polls += 1
            time.sleep(0.1)
    seconds = time.monotonic() - started
    tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:3])} failed ({child.returncode}); see {log}:\n" + "\n".join(tail))
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak_kb / 1024, 1),
        "database_peak_rss_mib": round(db_peak_kb / 1024, 1),
        "database_peak_private_mib": round(db_private_kb / 1024, 1),
        "output_tail": tail,
    }


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def _sql(statement: str, *, env: dict[str, str]) -> str:
    """Run one SQL statement through Django's connection in a child process; returns its rows as JSON."""
    code = (
        "import django,json,sys;django.setup();from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute(sys.argv[1])\n"
        "    print(json.dumps(c.fetchall() if c.description else [], default=str))"
    )
    done = subprocess.run(
        [PYTHON, "-c", code, statement], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


def database_counts(env: dict[str, str]) -> dict:
    tables = {
        "tickets": "tickets_ticket",
        "messages": "tickets_message",
        "events": "tickets_ticketevent",
        "ratings": "tickets_rating",
        "customers": "tickets_customer",
        "sessions": "tickets_session",
        "presence": "tickets_agentpresence",
        "snapshots": "reports_reportsnapshot",
    }
    found = json.loads(
        _sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
            env=env,
        )
    )
    names = {row[0] for row in found}
    counts = {}
    for label, table in tables.items():
        if table in names:
            counts[label] = json.loads(_sql(f"SELECT count(*) FROM {table}", env=env))[0][0]
    return counts


def import_phase(args: argparse.Namespace, env: dict[str, str], report: dict) -> None:
    """Generate the year's history, import it in a child process, then VACUUM ANALYZE."""
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.astimezone(ZONE).date()
    first_day = today - timedelta(days=args.days)
    # Named after the database, so that two databases can be built at once.
    database = env["DATABASE_URL"].rsplit("/", 1)[-1]
    path = OUT / f"reports-history-{database}.jsonl"
    started = time.monotonic()
    counts = year_history_write(path, tickets=args.tickets, first_day=first_day, days=args.days, now=now)
    report["history"] = {
        "first_day": first_day.isoformat(),
        "last_day": (today - timedelta(days=1)).isoformat(),
        "generated_at": _iso(now),
        "records": sum(counts.values()),
        "by_kind": dict(counts),
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "write_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report["history"]), flush=True)
    result = child_run(
        [PYTHON, "manage.py", "import_history", str(path)], env=env, log=OUT / f"reports-import-{database}.log"
    )
    result["records_per_second"] = round(report["history"]["records"] / result["seconds"], 1)
    report["import"] = result
    print(json.dumps(result), flush=True)
    if not args.keep_history:
        path.unlink()
    started = time.monotonic()
    _sql("VACUUM ANALYZE", env=env)
    report["vacuum_analyze_seconds"] = round(time.monotonic() - started, 1)
    report["database_counts"] = database_counts(env)
    print(json.dumps(report["database_counts"]), flush=True)


# --- measuring (child side) -------------------------------------------------------


def _django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


class QueryLog:
    """Times every SQL statement (``connection.execute_wrapper``), labelled with the stage running it.

    With ``explain`` set to a statement's position, that statement is first run
    as ``EXPLAIN (ANALYZE, BUFFERS)`` inside a savepoint that is rolled back,
    then for real, so its plan is captured without changing what the report sees.
    """

    def __init__(self, explain: int | None = None) -> None:
        self.stage = "other"
        self.queries: list[dict] = []
        self.explain = explain
        self.plan: str | None = None
        self._inside = False

    def __call__(self, execute, sql, params, many, context):
        if self._inside:
            return execute(sql, params, many, context)
        position = len(self.queries)
        if self.explain == position and not many:
            self._inside = True
            try:
                cursor = context["cursor"]
                cursor.execute("SAVEPOINT bench_explain")
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                self.plan = "\n".join(row[0] for row in cursor.fetchall())
                cursor.execute("ROLLBACK TO SAVEPOINT bench_explain")
            finally:
                self._inside = False
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append(
                {"stage": self.stage, "ms": round((time.perf_counter() - started) * 1000, 1), "sql": sql}
            )


def _staged(log: QueryLog, name: str, function, *, context_manager: bool = False):
    """``function`` wrapped so its SQL is labelled ``name`` and its time added to ``timings``."""
    import contextlib

    def timed(*args, **kwargs):
        outer = log.stage
        log.stage = name
        timed.calls += 1  # type: ignore[attr-defined]
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            log.stage = outer
            timed.seconds += time.perf_counter() - started  # type: ignore[attr-defined]

    if context_manager:

        @contextlib.contextmanager
        def timed_cm(*args, **kwargs):
            outer = log.stage
            log.stage = name
            timed_cm.calls += 1  # type: ignore[attr-defined]
            started = time.perf_counter()
            with function(*args, **kwargs) as value:
                log.stage = outer
                timed_cm.seconds += time.perf_counter() - started  # type: ignore[attr-defined]
                yield value
                log.stage = name + " (drop)"
            log.stage = outer

        timed_cm.seconds = 0.0  # type: ignore[attr-defined]
        timed_cm.calls = 0  # type: ignore[attr-defined]
        return timed_cm
    timed.seconds = 0.0  # type: ignore[attr-defined]
    timed.calls = 0  # type: ignore[attr-defined]
    return timed


def report_child(start: date, end: date, as_of: datetime, explain: int | None) -> dict:
    """One ``report_compute`` with the time of each stage and of each SQL statement."""
    _django_setup()
    from django.db import connection

    from reports import live, services

    log = QueryLog(explain=explain)
    # (label, module, attribute, is a context manager); those the code at hand lacks are skipped.
    stages = (
        ("calendar intervals", services, "materialised", True),
        ("policy calendars", services, "_policy_calendars", False),
        ("facts", services, "ticket_facts", True),
        ("ticket counts", services, "ticket_counts", False),
        ("durations", services, "ticket_durations", False),
        ("sla", services, "sla_figures", False),
        ("handled", services, "tickets_handled", False),
        ("quality", services, "quality_figures", False),
        ("live", live, "live_report", False),
        ("cost", live, "cost_for_period", False),
    )
    wrapped = {}
    for label, module, attribute, is_cm in stages:
        if hasattr(module, attribute):
            wrapped[label] = _staged(log, label, getattr(module, attribute), context_manager=is_cm)
            setattr(module, attribute, wrapped[label])
    from servicedesk.sla.models import BusinessCalendar

    calendar = BusinessCalendar.objects.get(is_default=True)
    with connection.execute_wrapper(log):
        started = time.perf_counter()
        result = services.report_compute(start=start, end=end, as_of=as_of, calendar=calendar)
        seconds = time.perf_counter() - started
    slowest = sorted(range(len(log.queries)), key=lambda i: -log.queries[i]["ms"])[:5]
    return {
        "seconds": round(seconds, 2),
        "stages": {label: round(f.seconds, 2) for label, f in wrapped.items() if f.calls},
        "sql_statements": len(log.queries),
        "sql_seconds": round(sum(q["ms"] for q in log.queries) / 1000, 2),
        "slowest": [{"position": i, **log.queries[i], "sql": log.queries[i]["sql"][:300]} for i in slowest],
        "slowest_sql_full": log.queries[slowest[0]]["sql"] if slowest else "",
        "plan": log.plan,
        "explained": {k: v for k, v in log.queries[explain].items()}
        if explain is not None and explain < len(log.queries)
        else None,
        "in_scope": result["tickets"]["in_scope"],
        "headline": {
            "solved": result["tickets"]["solved"],
            "sla": result.get("sla"),
            "fcr": result.get("fcr"),
            "csat": result.get("csat"),
        },
    }


def snapshot_child(days: list[date], as_of: datetime) -> dict:
    """``snapshot_compute`` of each given day, as the daily backfill runs it, timed one by one."""
    _django_setup()
    from reports import services, snapshots
    from reports.models import Granularity
    from reports.snapshots import snapshot_compute
    from servicedesk.sla.models import BusinessCalendar

    calendar = BusinessCalendar.objects.get(is_default=True)
    # Time report_compute and the backlog counts apart from the snapshot's other work.
    parts: dict[str, float] = {}

    def timed(name: str, function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                parts[name] = parts.get(name, 0.0) + time.perf_counter() - started

        return run

    services.report_compute = timed("report_compute", services.report_compute)
    # Every backlog query goes through _backlog_change (backlog_count and the run's BacklogTally).
    snapshots._backlog_change = timed("backlog_count", snapshots._backlog_change)
    tally = snapshots.BacklogTally()
    timings = {}
    for day in days:
        parts.clear()
        started = time.perf_counter()
        snapshot_compute(
            calendar=calendar,
            granularity=Granularity.DAY,
            start=day,
            end=day + timedelta(days=1),
            as_of=as_of,
            backlog=tally,
        )
        total = time.perf_counter() - started
        timings[day.isoformat()] = {"seconds": round(total, 2), **{k: round(v, 2) for k, v in parts.items()}}
    return timings


# --- measuring (parent side) ---------------------------------------------------------


def _child_json(log: Path) -> dict:
    return json.loads(log.read_text(encoding="utf-8").strip().splitlines()[-1])


def busiest_month(env: dict[str, str]) -> tuple[date, date, int]:
    """The full local month (inside the history's span) with the most tickets."""
    rows = json.loads(
        _sql(
            "SELECT (date_trunc('month', created_at AT TIME ZONE 'Europe/Dublin'))::date, count(*), "
            "min((created_at AT TIME ZONE 'Europe/Dublin')::date) FROM tickets_ticket GROUP BY 1 ORDER BY 1",
            env=env,
        )
    )
    today = datetime.now(UTC).astimezone(ZONE).date()
    full = []
    for index, (month, count, first) in enumerate(rows):
        start = date.fromisoformat(month)
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        if (index > 0 or date.fromisoformat(first) == start) and end <= today:
            full.append((count, start, end))
    if not full:
        raise SystemExit("No full month of history to report on.")
    count, start, end = max(full)
    return start, end, count


def _code_state() -> dict:
    """The commit measured and any uncommitted change to the report code (others may be editing it)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--porcelain", "reports", "servicedesk/tickets"),
    }


def measure_phase(args: argparse.Namespace, env: dict[str, str], report: dict) -> None:
    as_of = datetime.now(UTC).replace(microsecond=0)
    report["as_of"] = _iso(as_of)
    report["code"] = _code_state()
    if "database_counts" not in report:
        report["database_counts"] = database_counts(env)
    start, end, count = busiest_month(env)
    report["month"] = {"start": start.isoformat(), "end": end.isoformat(), "tickets_created": count, "runs": []}
    print(f"month {start} .. {end}: {count} tickets", flush=True)
    me = [PYTHON, str(Path(__file__).resolve())]
    for run in range(args.runs):
        log = OUT / f"reports-month-{run}.log"
        result = child_run([*me, "--report-child", start.isoformat(), end.isoformat(), _iso(as_of)], env=env, log=log)
        figures = _child_json(log)
        figures.pop("plan", None)
        figures.pop("slowest_sql_full", None)
        run_result = {
            "child_seconds": result["seconds"],
            "peak_rss_mib": result["peak_rss_mib"],
            "database_peak_rss_mib": result["database_peak_rss_mib"],
            "database_peak_private_mib": result["database_peak_private_mib"],
            **figures,
        }
        report["month"]["runs"].append(run_result)
        shown = (
            "seconds",
            "child_seconds",
            "peak_rss_mib",
            "database_peak_rss_mib",
            "database_peak_private_mib",
            "stages",
        )
        print(json.dumps({k: run_result[k] for k in shown}), flush=True)
    slowest = report["month"]["runs"][-1]["slowest"][0]["position"]
    log = OUT / "reports-month-explain.log"
    result = child_run(
        [*me, "--report-child", start.isoformat(), end.isoformat(), _iso(as_of), "--explain", str(slowest)],
        env=env,
        log=log,
    )
    figures = _child_json(log)
    report["month"]["explain"] = {
        "position": slowest,
        "stage": (figures["explained"] or {}).get("stage"),
        "sql": (figures["explained"] or {}).get("sql"),
        "plan": figures["plan"],
        "note": "this run's report time includes the EXPLAIN ANALYZE of that statement",
        "seconds": figures["seconds"],
    }
    print(figures["plan"], flush=True)

    first = date.fromisoformat(
        json.loads(_sql("SELECT min((created_at AT TIME ZONE 'Europe/Dublin')::date) FROM tickets_ticket", env=env))[0][
            0
        ]
    )
    today = as_of.astimezone(ZONE).date()
    total_days = (today - first).days
    _sql("DELETE FROM reports_reportsnapshot", env=env)
    if args.backfill_sample:
        step = total_days / args.backfill_sample
        days = [first + timedelta(days=int(i * step)) for i in range(args.backfill_sample)]
        log = OUT / "reports-backfill-sample.log"
        result = child_run(
            [*me, "--snapshot-child", ",".join(d.isoformat() for d in days), _iso(as_of)], env=env, log=log
        )
        timings = _child_json(log)
        seconds = [t["seconds"] for t in timings.values()]
        mean = sum(seconds) / len(seconds)
        report["backfill"] = {
            "mode": "sample",
            "since": first.isoformat(),
            "days_in_backfill": total_days,
            "sample_days": len(days),
            "child_seconds": result["seconds"],
            "peak_rss_mib": result["peak_rss_mib"],
            "per_day": timings,
            "database_peak_rss_mib": result["database_peak_rss_mib"],
            "database_peak_private_mib": result["database_peak_private_mib"],
            "mean_day_seconds": round(mean, 2),
            "max_day_seconds": max(seconds),
            "mean_report_compute_seconds": round(
                sum(t.get("report_compute", 0) for t in timings.values()) / len(seconds), 2
            ),
            "mean_backlog_seconds": round(sum(t.get("backlog_count", 0) for t in timings.values()) / len(seconds), 2),
            "extrapolated_seconds": round(mean * total_days, 1),
        }
    else:
        log = OUT / "reports-backfill.log"
        result = child_run(
            [PYTHON, "manage.py", "report", "--backfill", "--since", first.isoformat()], env=env, log=log
        )
        report["backfill"] = {
            "mode": "full",
            "since": first.isoformat(),
            "days_in_backfill": total_days,
            "seconds": result["seconds"],
            "peak_rss_mib": result["peak_rss_mib"],
            "output_tail": result["output_tail"],
            "database_peak_rss_mib": result["database_peak_rss_mib"],
            "database_peak_private_mib": result["database_peak_private_mib"],
            "snapshots": json.loads(_sql("SELECT count(*) FROM reports_reportsnapshot", env=env))[0][0],
        }
    print(json.dumps({k: v for k, v in report["backfill"].items() if k != "per_day"}), flush=True)


# --- main ---------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365, help="Days of history, ending yesterday (local).")
    parser.add_argument("--flush", action="store_true", help="Empty the database first (all its data is deleted).")
    parser.add_argument("--import-only", action="store_true", help="Build the database, measure nothing else.")
    parser.add_argument("--skip-import", action="store_true", help="Measure on the data already there.")
    parser.add_argument("--keep-history", action="store_true", help="Keep the generated JSON Lines file.")
    parser.add_argument(
        "--backfill-sample",
        type=int,
        default=0,
        help="Time this many days spread over the year instead of the whole backfill (0: whole).",
    )
    parser.add_argument("--runs", type=int, default=3, help="Runs of the month's report.")
    parser.add_argument("--report-child", nargs=3, metavar=("START", "END", "AS_OF"), help=argparse.SUPPRESS)
    parser.add_argument("--explain", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot-child", nargs=2, metavar=("DAYS", "AS_OF"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_child:
        start, end, as_of = args.report_child
        figures = report_child(
            date.fromisoformat(start), date.fromisoformat(end), datetime.fromisoformat(as_of), args.explain
        )
        print(json.dumps(figures, default=str))
        return
    if args.snapshot_child:
        days, as_of = args.snapshot_child
        print(
            json.dumps(snapshot_child([date.fromisoformat(d) for d in days.split(",")], datetime.fromisoformat(as_of)))
        )
        return

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database; the benchmark refuses SQLite.")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local", "DEBUG": "false"}
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict = {
        "database": url.rsplit("@", 1)[-1],
        "tickets": args.tickets,
        "cpus": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out_path = OUT / f"reports-{stamp}.json"
    if not args.skip_import:
        _manage("migrate", "--no-input", env=env)
        if args.flush:
            _manage("flush", "--no-input", env=env)
        if json.loads(_sql("SELECT count(*) FROM tickets_ticket", env=env))[0][0]:
            raise SystemExit("The database already holds tickets: use --flush, or --skip-import to measure it as is.")
        import_phase(args, env, report)
        out_path.write_text(json.dumps(report, indent=2))
    if not args.import_only:
        measure_phase(args, env, report)
        out_path.write_text(json.dumps(report, indent=2))
    print(f"\nJSON: {out_path}")


if __name__ == "__main__":
    main()
