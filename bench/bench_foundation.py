"""Foundation benchmark: history import speed and memory, inbox and API latency.

Runs against PostgreSQL only (``DATABASE_URL=postgres://...``). See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_bench \
        .venv/bin/python bench/bench_foundation.py --flush --tickets 100000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
SMALL_TICKETS = 1000
AGENTS = 20
TICKETS_PER_CUSTOMER = 5
CHANNELS = ("email", "web", "chat", "forum", "phone")
TOPICS = ("billing", "technical", "account", "other")
PRIORITIES = ("low", "normal", "normal", "normal", "high", "urgent")
START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
# A ticket's conversation: (message type, minutes after creation, status set with it).
CONVERSATION = (
    ("public_enduser", 0, None),
    ("public_agent", 45, "pending"),
    ("public_enduser", 180, "open"),
    ("internal", 200, None),
    ("public_agent", 240, "solved"),
    ("public_enduser", 1440, "open"),
    ("public_agent", 1500, "solved"),
)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def history_write(path: Path, *, first: int, stop: int, messages_per_ticket: int, seed: int = 7) -> int:
    """Write tickets [first, stop) with their customers, messages and some assignments,
    ratings; agents are always included (the importer skips them when known).
    Streams to disk; returns the number of records."""
    rng = random.Random(seed * 1_000_003 + first)
    count = 0
    with path.open("w", encoding="utf-8") as out:

        def emit(record: dict) -> None:
            nonlocal count
            out.write(json.dumps(record, separators=(",", ":")))
            out.write("\n")
            count += 1

        emit(
            {
                "kind": "agent",
                "id": "bench-manager",
                "email": "manager@bench.example",
                "name": "Bench Manager",
                "role": "manager",
            }
        )
        for n in range(AGENTS):
            emit(
                {
                    "kind": "agent",
                    "id": f"a{n}",
                    "email": f"agent{n}@bench.example",
                    "name": f"Agent {n}",
                    "role": "agent",
                }
            )
        for number in range(first, stop):
            customer = f"c{number // TICKETS_PER_CUSTOMER}"
            if number % TICKETS_PER_CUSTOMER == 0 or number == first:
                c = number // TICKETS_PER_CUSTOMER
                emit(
                    {
                        "kind": "customer",
                        "id": customer,
                        "name": f"Customer {c}",
                        "emails": [f"customer{c}@example.com"],
                        "organization": f"Org {c % 200}",
                        "tier": "vip" if c % 200 == 0 else "standard",
                    }
                )
            created = START + timedelta(minutes=7 * number)
            ticket = f"T{number}"
            queue = "billing" if number % 3 == 0 else "support"
            emit(
                {
                    "kind": "ticket",
                    "id": ticket,
                    "at": _iso(created),
                    "channel": CHANNELS[number % 5],
                    "initiator": "inbound",
                    "customer": customer,
                    "subject": f"Question {number} about my account",
                    "topic": TOPICS[number % 4],
                    "priority": rng.choice(PRIORITIES),
                    "queue": queue,
                }
            )
            agent = f"a{number % AGENTS}"
            if number % 10 == 0:
                emit({"kind": "assign", "ticket": ticket, "at": _iso(created + timedelta(minutes=5)), "agent": agent})
            for index in range(messages_per_ticket):
                kind, minutes, status = CONVERSATION[index % len(CONVERSATION)]
                at = created + timedelta(minutes=minutes + 1500 * (index // len(CONVERSATION)))
                record = {
                    "kind": "message",
                    "id": f"m{number}-{index}",
                    "ticket": ticket,
                    "at": _iso(at),
                    "type": kind,
                    "author": customer if kind == "public_enduser" else agent,
                    "body": f"Message {index} on ticket {number}. " * 3,
                }
                if status:
                    record["status"] = status
                emit(record)
            if number % 10 == 5 and messages_per_ticket >= 5:
                emit(
                    {
                        "kind": "rating",
                        "ticket": ticket,
                        "at": _iso(created + timedelta(days=2)),
                        "score": rng.randint(1, 5),
                        "comment": "",
                    }
                )
    return count


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def import_measure(path: Path, *, env: dict[str, str]) -> dict:
    """Run import_history in a child process, sampling its peak resident memory."""
    started = time.monotonic()
    child = subprocess.Popen(
        [PYTHON, "manage.py", "import_history", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak_kb = 0
    status_file = Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        try:
            for line in status_file.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.2)
    stdout, stderr = child.communicate()
    seconds = time.monotonic() - started
    peak_kb = max(peak_kb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if peak_kb == 0 else 0)
    if child.returncode != 0:
        raise SystemExit(f"import_history failed ({child.returncode}):\n{stderr[-4000:]}")
    records = sum(1 for _line in path.open("rb"))
    return {
        "records": records,
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds, 1),
        "peak_rss_mib": round(peak_kb / 1024, 1),
        "summary": stdout.strip().splitlines()[-1] if stdout.strip() else "",
    }


VARIANTS = (
    "",
    "?page=2",
    "?status=open",
    "?channel=email",
    "?priority=high",
    "?sort=-priority",
    "?sort=status",
    "?sort=subject",
    "?sort=created",
    "?search=Customer+42",
    "?search=question",
)
PAGES = {"/desk/": VARIANTS, "/api/v1/tickets/": VARIANTS}
REQUESTS = 200


def pages_measure() -> dict:
    """p50/p95 latency and SQL queries per page, as a manager and as an agent, in-process."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from servicedesk.accounts.models import User
    from servicedesk.tickets.models import Ticket

    # a0 is assigned every twentieth ticket, in both queues, so it works in (and sees) both;
    # agents without assignments belong to no queue and would measure an empty list.
    users = {
        "manager": User.objects.get(external_id="bench-manager"),
        "agent": User.objects.get(external_id="a0"),
    }
    # Fresh planner statistics and visibility map, as autovacuum keeps them on a
    # production server, so the figures do not depend on whether it has run yet.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    results: dict = {"tickets": Ticket.objects.count(), "pages": {}}
    for role, user in users.items():
        client = Client()
        client.force_login(user)
        for page, variants in PAGES.items():
            timings: list[float] = []
            by_variant: dict[str, list[float]] = {}
            queries: dict[str, int] = {}
            statuses: set[int] = set()
            for n in range(REQUESTS):
                variant = variants[n % len(variants)]
                with CaptureQueriesContext(connection) as captured:
                    started = time.perf_counter()
                    response = client.get(page + variant)
                    elapsed = (time.perf_counter() - started) * 1000
                timings.append(elapsed)
                by_variant.setdefault(variant or "(first page)", []).append(elapsed)
                if response.status_code != 200:
                    raise SystemExit(
                        f"{role} GET {page}{variant} answered {response.status_code}; every measured request must be a 200"
                    )
                statuses.add(response.status_code)
                queries[variant or "(first page)"] = max(queries.get(variant or "(first page)", 0), len(captured))
            timings.sort()
            results["pages"][f"{role} {page}"] = {
                "status": sorted(statuses),
                "p50_ms": round(statistics.median(timings), 1),
                "p95_ms": round(_p95(timings), 1),
                "queries": queries,
                "variants": {
                    name: {"p50_ms": round(statistics.median(ts), 1), "p95_ms": round(_p95(ts), 1)}
                    for name, ts in by_variant.items()
                },
            }
    connection.close()
    return results


def _p95(values: list[float]) -> float:
    """The ceil(0.95 n)-th smallest value."""
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


def _table(report: dict) -> str:
    lines = ["| measure | value |", "| --- | --- |"]
    for phase in ("import_small", "import"):
        if phase in report:
            r = report[phase]
            lines.append(f"| {phase}: records | {r['records']} |")
            lines.append(f"| {phase}: records/s | {r['records_per_second']} |")
            lines.append(f"| {phase}: peak RSS MiB | {r['peak_rss_mib']} |")
    lines += [
        "",
        "| page | tickets | status | p50 ms | p95 ms | max queries |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for phase in ("pages_small", "pages"):
        if phase not in report:
            continue
        for name, page in report[phase]["pages"].items():
            lines.append(
                f"| {name} | {report[phase]['tickets']} | {page['status']} | {page['p50_ms']} | {page['p95_ms']} | "
                f"{max(page['queries'].values())} |"
            )
    if "query_growth" in report:
        lines += ["", f"Query counts constant between databases: {report['query_growth']['constant']}"]
        for item in report["query_growth"]["grown"]:
            lines.append(f"- grew: {item}")
    return "\n".join(lines)


def _pages_in_child(env: dict[str, str]) -> dict:
    # A fresh interpreter per measurement, so the large run does not reuse warm caches of the small one.
    done = subprocess.run(
        [PYTHON, __file__, "--pages-only"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages-per-ticket", type=int, default=5)
    parser.add_argument("--skip-import", action="store_true", help="Only measure pages on the existing data.")
    parser.add_argument("--flush", action="store_true", help="Empty the database first (all its data is deleted).")
    parser.add_argument("--pages-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database; the benchmark refuses SQLite.")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local", "DEBUG": "false"}
    if args.pages_only:
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        print(json.dumps(pages_measure()))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "database": url.rsplit("@", 1)[-1],
        "tickets": args.tickets,
        "messages_per_ticket": args.messages_per_ticket,
        "cpus": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _manage("migrate", "--no-input", env=env)
    if args.flush:
        _manage("flush", "--no-input", env=env)
    if not args.skip_import:
        count = subprocess.run(
            [
                PYTHON,
                "-c",
                "import django,os;django.setup();from servicedesk.tickets.models import Ticket;print(Ticket.objects.count())",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        if int(count.stdout.strip() or 0):
            raise SystemExit("The database already holds tickets: use --flush, or --skip-import to measure it as is.")
        small = min(SMALL_TICKETS, args.tickets)
        path = OUT / "history-small.jsonl"
        history_write(path, first=0, stop=small, messages_per_ticket=args.messages_per_ticket)
        report["import_small"] = import_measure(path, env=env)
        path.unlink()
        report["pages_small"] = _pages_in_child(env)
        if args.tickets > small:
            path = OUT / "history.jsonl"
            history_write(path, first=small, stop=args.tickets, messages_per_ticket=args.messages_per_ticket)
            report["import"] = import_measure(path, env=env)
            path.unlink()
    report["pages"] = _pages_in_child(env)
    if "pages_small" in report:
        grown = []
        for name, page in report["pages"]["pages"].items():
            before = report["pages_small"]["pages"][name]["queries"]
            grown += [
                f"{name}{variant}: {before[variant]} -> {n}"
                for variant, n in page["queries"].items()
                if n > before[variant]
            ]
        report["query_growth"] = {"constant": not grown, "grown": grown}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"foundation-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(_table(report))
    print(f"\nJSON: {OUT / f'foundation-{stamp}.json'}")


if __name__ == "__main__":
    main()
