"""Help-centre list benchmark: a signed-in customer's requests, ``GET /help/tickets/``, from the project's web server.

The list (``channels_app.web.views.portal_home``: the customer's own
tickets, neither spam, deleted nor merged away, the latest change first, 25
a page, ``?page=N``) of a customer with ``--tickets`` requests (default
5,000) over the channels email, web, chat, phone and forum, among
``--others`` tickets (default 20,000) of ``--other-customers`` other
customers (default 2,000), with ``--hidden`` more tickets of the same
customer (spam, deleted and merged away, a third of them the newest of
all) that must never be listed.

1. **Build**, in a child process: a migrated template database copied for
   the run (``<name>_tpl``, ``<name>_run``, as bench_phone.py does), then
   the customers (each with an email address) and every ticket written with
   ``bulk_create``, ids taken from the table's sequence in order of creation
   and references made from them as the product makes them, a 32-character
   ``portal_key``, a queue (by channel), statuses by age, creation times
   over ``--days`` days and last updates after them, and each ticket's
   ``created`` event. The customer signs in through a sign-in link
   (``signin_link_use``), as does a second customer with 30 requests (the
   query count of a short list, to compare). Then ``VACUUM ANALYZE``.
2. **Queries**, in a child process: each measured page once through
   ``django.test.Client`` with the ``sd_help`` cookie, after a first request,
   under ``CaptureQueriesContext``: the number of SQL statements, each
   statement's time and ``EXPLAIN (ANALYZE, BUFFERS)`` of those reading
   tickets, and the in-process time of ``--inprocess-runs``
   requests (median), for page 1, the middle page and the last page of the
   customer, and page 1 of the customer with 30 requests.
3. **Requests** to ``python -m servicedesk.serve`` (``--workers``
   processes, ``DEBUG`` off, PostgreSQL, Redis at ``REDIS_URL``): for each
   number of clients in ``--clients`` (default ``1,4``, keep-alive
   connections sending at once), each page ``--warmup`` times per client
   (not counted), then ``--requests`` times (default 300). Reported per page
   and overall: p50/p95/p99/max latency, requests a second, and the CPU of
   the server and of the PostgreSQL backends serving it per request.

Every answer must be 200 and list exactly the references the database says
the page holds (the spam, deleted and merged tickets among the newest must
not appear), or the run fails (after the JSON is written). Goal: constant
queries and p95 under 150 ms.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_benchportal REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/bench_portal.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))

from bench_chat import _percentiles  # noqa: E402
from bench_intake import database_drop, server_version, uvicorn_running  # noqa: E402
from bench_phone import CpuWindow, _machine, _server_pid, databases_prepared  # noqa: E402

PATH = "/help/tickets/"
COOKIE = "sd_help"
# As bench_reports.py: the share of each channel.
CHANNELS = {"email": 40, "web": 25, "chat": 15, "phone": 12, "forum": 8}
QUEUE_OF_CHANNEL = {"chat": "live", "phone": "live"}
QUEUES = {"support": "Support", "billing": "Billing", "technical": "Technical", "live": "Live"}
SUBJECTS = (
    "Order {n} has not arrived",
    "Question about invoice {n}",
    "Cannot sign in to my account ({n})",
    "Refund for order {n}",
    "Change of delivery address, order {n}",
    "The app stops when I open settings ({n})",
    "Damaged item in parcel {n}",
    "How do I cancel subscription {n}?",
)
SMALL_TICKETS = 30
ROW = re.compile(r'href="/help/requests/([^/"]+)/"')


# --- Build (child process) ---------------------------------------------------------------------------------------


def step_setup(tickets: str, others: str, other_customers: str, hidden: str, days: str, seed: str, out: str) -> dict:
    """The customers, their tickets and events, two signed-in sessions; what each measured page must list."""
    import hashlib
    import secrets

    from django.db import transaction
    from django.utils import timezone

    from channels_app.web.models import SignInLink
    from channels_app.web.signin import signin_link_use
    from channels_app.web.views import PORTAL_PAGE_SIZE
    from servicedesk.tickets.access import tickets_visible_to_customer
    from servicedesk.tickets.ids import ids_allocate
    from servicedesk.tickets.models import Customer, Identity, Queue, Ticket, TicketEvent
    from servicedesk.tickets.services.tickets import reference_for
    from servicedesk.tickets.statuses import Status

    rng = random.Random(int(seed))
    now = timezone.now().replace(microsecond=0)
    span = timedelta(days=int(days)).total_seconds()
    tickets_n, others_n, customers_n, hidden_n = int(tickets), int(others), int(other_customers), int(hidden)
    started = time.perf_counter()
    with transaction.atomic():
        queues = {
            slug: Queue.objects.get_or_create(slug=slug, defaults={"name": name})[0] for slug, name in QUEUES.items()
        }

        def customers_make(names: list[str], prefix: str) -> list[Any]:
            made = Customer.objects.bulk_create(
                Customer(name=name, language="en", created_at=now - timedelta(seconds=span)) for name in names
            )
            Identity.objects.bulk_create(
                Identity(customer=c, kind="email", value=f"{prefix}{i}@bench.example") for i, c in enumerate(made)
            )
            return made

        (customer,) = customers_make(["Bench Customer"], "portal")
        (small,) = customers_make(["Short List"], "short")
        crowd = customers_make([f"Customer {n}" for n in range(customers_n)], "customer")

        # (owner, kind, newest) per ticket; kind: "" listed, or spam / deleted / merged (never listed).
        plan: list[tuple[Any, str, bool]] = [(customer, "", False)] * tickets_n
        plan += [(small, "", False)] * SMALL_TICKETS
        plan += [(rng.choice(crowd), "", False) for _ in range(others_n)] if crowd else []
        kinds = ("spam", "deleted", "merged")
        # Of each kind, about a third made in the last day: the newest, so page 1 would show them.
        plan += [(customer, kinds[i % 3], (i // 3) % 3 == 0) for i in range(hidden_n)]
        # Creation times over the span, ids in order of creation as the sequence hands them out.
        rows = []
        for owner, kind, newest in plan:
            if newest:
                created = now - timedelta(seconds=rng.uniform(600, 86_400))
            else:
                created = now - timedelta(seconds=rng.uniform(3_600, span))
            rows.append((created, owner, kind))
        rows.sort(key=lambda row: row[0])
        ids = ids_allocate(Ticket, len(rows))
        made, events = [], []
        listed_of_customer: list[int] = []
        for pk, (created, owner, kind) in zip(ids, rows, strict=True):
            updated = min(now - timedelta(seconds=30), created + timedelta(seconds=rng.expovariate(1 / 172_800)))
            age = (now - updated).total_seconds()
            if age > 14 * 86_400:
                status = rng.choices([Status.SOLVED, Status.CLOSED], [40, 60])[0]
            else:
                status = rng.choice(list(Status.values))
            channel = rng.choices(list(CHANNELS), list(CHANNELS.values()))[0]
            queue = queues[QUEUE_OF_CHANNEL.get(channel) or rng.choice(["support", "billing", "technical"])]
            priority = rng.choices(["low", "normal", "high", "urgent"], [15, 65, 15, 5])[0]
            solved = status in (Status.SOLVED, Status.CLOSED)
            ticket = Ticket(
                pk=pk,
                reference=reference_for(pk),
                subject=rng.choice(SUBJECTS).format(n=rng.randint(10_000, 99_999)),
                channel=channel,
                status=status,
                priority=priority,
                customer=owner,
                queue=queue,
                language="en",
                is_spam=kind == "spam",
                is_deleted=kind == "deleted",
                portal_key=f"{rng.getrandbits(128):032x}",
                created_at=created,
                updated_at=updated,
                first_reply_at=min(updated, created + timedelta(minutes=rng.randint(5, 600)))
                if status != Status.NEW
                else None,
                solved_at=updated if solved else None,
            )
            if owner is customer and not kind:
                listed_of_customer.append(pk)
            made.append((ticket, kind))
            events.append(
                TicketEvent(
                    ticket_id=pk,
                    kind=TicketEvent.Kind.CREATED,
                    at=created,
                    actor_customer=owner,
                    after={
                        "status": Status.NEW,
                        "priority": priority,
                        "channel": channel,
                        "initiator": "inbound",
                        "queue": queue.slug,
                        "topic": None,
                        "assignee": None,
                    },
                    source="intake",
                )
            )
        # A merged ticket points at one of the customer's listed tickets created before it.
        for ticket, kind in made:
            if kind == "merged":
                earlier = [pk for pk in listed_of_customer if pk < ticket.pk] or listed_of_customer
                ticket.merged_into_id = earlier[-1]
        Ticket.objects.bulk_create([t for t, _kind in made if t.merged_into_id is None], batch_size=2000)
        Ticket.objects.bulk_create([t for t, _kind in made if t.merged_into_id is not None], batch_size=2000)
        TicketEvent.objects.bulk_create(events, batch_size=2000)

        def signed_in(who: Any) -> str:
            token = secrets.token_urlsafe(32)
            SignInLink.objects.create(
                customer=who,
                address="portal@bench.example",
                digest=hashlib.sha256(token.encode()).hexdigest(),
                created_at=now,
                expires_at=now + timedelta(minutes=15),
            )
            return str(signin_link_use(token=token, user_agent="bench_portal"))

        key, small_key = signed_in(customer), signed_in(small)
    built = time.perf_counter() - started

    def pages_of(who: Any) -> list[list[str]]:
        refs = list(tickets_visible_to_customer(who).order_by("-updated_at", "-id").values_list("reference", flat=True))
        return [refs[i : i + PORTAL_PAGE_SIZE] for i in range(0, len(refs), PORTAL_PAGE_SIZE)] or [[]]

    pages = pages_of(customer)
    last = len(pages)
    measured = sorted({1, max(1, (last + 1) // 2), last})
    hidden_refs = [t.reference for t, kind in made if kind]
    own = [t for t, _kind in made if t.customer_id == customer.pk]
    newest = {t.reference for t in sorted(own, key=lambda t: (t.updated_at, t.pk), reverse=True)[:PORTAL_PAGE_SIZE]}
    Path(out).write_text(
        json.dumps(
            {
                "page_size": PORTAL_PAGE_SIZE,
                "customer": {"key": key, "listed": sum(len(p) for p in pages), "pages": last},
                "small": {"key": small_key, "listed": SMALL_TICKETS, "page_1": pages_of(small)[0]},
                "expected": {str(n): pages[n - 1] for n in measured},
                "hidden": hidden_refs,
            }
        )
    )
    return {
        "seconds": round(built, 1),
        "tickets": len(made),
        "events": len(events),
        "customers": customers_n + 2,
        "customer_listed": sum(len(p) for p in pages),
        "customer_hidden": Counter(kind for _t, kind in made if kind),
        "customer_pages": last,
        "hidden_among_its_25_newest": len(set(hidden_refs) & newest),
        "measured_pages": measured,
    }


# --- Queries (child process) -------------------------------------------------------------------------------------


class StatementTimer:
    """A ``connection.execute_wrapper``: each statement's round trip, in seconds, in order."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds.append(time.perf_counter() - began)


def step_queries(setup_path: str, runs: str) -> dict:
    """Each measured page through the test client: SQL statements (count, each one's time), in-process time."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    setup = json.loads(Path(setup_path).read_text())
    cases = [(f"page {n}", setup["customer"]["key"], int(n), refs) for n, refs in setup["expected"].items()]
    cases.append((f"short list ({SMALL_TICKETS} requests), page 1", setup["small"]["key"], 1, setup["small"]["page_1"]))
    found: dict[str, Any] = {}
    for name, key, number, refs in cases:
        client = Client()
        client.cookies[COOKIE] = key
        path = f"{PATH}?page={number}"
        client.get(path)  # first request: lazy imports, the connection
        timer = StatementTimer()
        with connection.execute_wrapper(timer), CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        # Read now: the next request's start empties the connection's log the capture reads from.
        logged = list(captured.captured_queries)
        listed = ROW.findall(response.content.decode())
        walls, db_times = [], []
        for _ in range(int(runs)):
            each = StatementTimer()
            with connection.execute_wrapper(each):
                began = time.perf_counter()
                client.get(path)
                walls.append(time.perf_counter() - began)
            db_times.append(sum(each.seconds))
        statements = [
            {"ms": round(1000 * seconds, 2), "sql": q["sql"][:600]}
            for seconds, q in zip(timer.seconds, logged, strict=True)
        ]
        if name.startswith("page"):
            # How PostgreSQL reads the page's tickets (the SQL as sent, its values inlined by Django's log).
            with connection.cursor() as cursor:
                for statement, q in zip(statements, logged, strict=True):
                    if "tickets_ticket" in q["sql"] and q["sql"].startswith("SELECT"):
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"])
                        statement["plan"] = [row[0] for row in cursor.fetchall()]
        found[name] = {
            "path": path,
            "status": response.status_code,
            "rows": len(listed),
            "rows_as_expected": listed == refs,
            "queries": len(logged),
            "statements": statements,
            "in_process_ms": round(1000 * statistics.median(walls), 2),
            "in_process_db_ms": round(1000 * statistics.median(db_times), 2),
            "html_bytes": len(response.content),
        }
    return found


# --- Requests ------------------------------------------------------------------------------------------------------


def requests_run(
    port: int, key: str, number: int, expected: list[str], hidden: set[str], count: int, clients: int, warmup: int
) -> dict[str, Any]:
    """``count`` requests of page ``number`` by ``clients`` keep-alive connections at once, each answer checked."""
    path = f"{PATH}?page={number}"
    headers = {"Cookie": f"{COOKIE}={key}", "Accept": "text/html", "User-Agent": "bench_portal"}

    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"{status} {body[:200]!r}"
        listed = ROW.findall(body.decode(errors="replace"))
        if listed != expected:
            shown = sorted(set(listed) & hidden)
            return f"{len(listed)} rows, not the {len(expected)} expected in order" + (
                f"; hidden tickets listed {shown[:5]}" if shown else ""
            )
        return None

    return keepalive_requests(port, path, headers, check, count=count, clients=clients, warmup=warmup)


def keepalive_requests(
    port: int,
    path: str,
    headers: dict[str, str],
    check: Callable[[int, bytes], str | None],
    *,
    count: int,
    clients: int,
    warmup: int,
) -> dict[str, Any]:
    """``count`` GETs of ``path`` by ``clients`` keep-alive connections at once, after ``warmup`` each
    (not counted); ``check(status, body)`` names what is wrong with an answer (None: right).
    Also used by bench_forum.py."""
    lock = threading.Lock()
    left = [count]
    times: list[float] = []
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            try:
                for _ in range(warmup):
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    problem = check(response.status, response.read())
                    if problem:
                        with lock:
                            wrong.append(f"warm-up: {problem}")
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    errors.append(f"warm-up: {type(exc).__name__}: {exc}")
            barrier.wait()
            while True:
                with lock:
                    if left[0] <= 0:
                        break
                    left[0] -= 1
                sent = time.perf_counter()
                try:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                took = time.perf_counter() - sent
                problem = check(response.status, body)
                with lock:
                    times.append(took)
                    statuses[response.status] += 1
                    if problem and len(wrong) < 20:
                        wrong.append(problem)
                    elif problem:
                        wrong.append("")
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {
        "path": path,
        "clients": clients,
        "requests": len(times),
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(times) / seconds, 1) if seconds else None,
        "statuses": {str(k): v for k, v in statuses.items()},
        "latency_ms": _percentiles(times),
        "wrong_answers": len(wrong),
        "wrong_examples": [w for w in wrong if w][:20],
        "errors": errors[:20],
        "_times": times,
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("django", "uvicorn", "httptools", "psycopg", "redis"):
        with suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _child_step(env: dict[str, str], step: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([PYTHON, __file__, "--step", step, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-6000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def vacuum_analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def main() -> None:
    if sys.argv[1:2] == ["--step"]:
        import django

        django.setup()
        steps = {"setup": step_setup, "queries": step_queries}
        print(json.dumps(steps[sys.argv[2]](*sys.argv[3:]), default=str))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=5000, help="The customer's listed requests (5000).")
    parser.add_argument("--others", type=int, default=20000, help="Other customers' tickets (20000).")
    parser.add_argument("--other-customers", type=int, default=2000, help="Customers they belong to (2000).")
    parser.add_argument(
        "--hidden", type=int, default=30, help="The customer's spam, deleted and merged tickets, never listed (30)."
    )
    parser.add_argument("--days", type=int, default=730, help="Creation times spread over this many days (730).")
    parser.add_argument("--requests", type=int, default=300, help="Measured requests per page and client count (300).")
    parser.add_argument(
        "--clients",
        type=lambda v: [int(c) for c in v.split(",") if c.strip()],
        default=[1, 4],
        help="Comma-separated numbers of connections sending at once (default 1,4).",
    )
    parser.add_argument("--warmup", type=int, default=10, help="Unmeasured requests per page and connection (10).")
    parser.add_argument("--workers", type=int, default=1, help="Server processes (1).")
    parser.add_argument(
        "--inprocess-runs", type=int, default=20, help="In-process requests per page for its median time (20)."
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-databases", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL database (the benchmark refuses SQLite).")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        raise SystemExit("Set REDIS_URL to a Redis database of the benchmark's own: it is emptied (FLUSHDB).")
    import redis

    base = url.rsplit("/", 1)[1]
    template, run_db = f"{base}_tpl", f"{base}_run"
    work = Path(tempfile.mkdtemp(prefix="sd-bench-portal-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "REDIS_URL": redis_url,
    }
    env.pop("WEB_CONCURRENCY", None)
    report: dict[str, Any] = {
        "benchmark": "portal",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": vars(args),
        "machine": _machine(),
        "python": sys.version.split()[0],
        "versions": _versions(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    failures: list[str] = []
    try:
        report["postgresql"] = server_version(url)
        started = time.perf_counter()
        run_url = databases_prepared(url, template, run_db, work, env)
        var_dir = work / "var"
        var_dir.mkdir()
        run_env = {**env, "DATABASE_URL": run_url, "SERVICEDESK_VAR_DIR": str(var_dir)}
        setup_path = work / "setup.json"
        report["setup"] = _child_step(
            run_env,
            "setup",
            *map(str, (args.tickets, args.others, args.other_customers, args.hidden, args.days, args.seed)),
            str(setup_path),
        )
        vacuum_analyze(run_url)
        report["setup"]["seconds_with_migrate_and_vacuum"] = round(time.perf_counter() - started, 1)
        setup = json.loads(setup_path.read_text())
        print(f"set-up: {report['setup']}", flush=True)

        queries = _child_step(run_env, "queries", str(setup_path), str(args.inprocess_runs))
        report["queries"] = queries
        for name, q in queries.items():
            print(
                f"  {name}: {q['queries']} queries, {q['rows']} rows, in-process {q['in_process_ms']} ms"
                f" (database {q['in_process_db_ms']} ms)",
                flush=True,
            )
            if q["status"] != 200 or not q["rows_as_expected"]:
                failures.append(f"in-process {name}: status {q['status']}, {q['rows']} rows, not the expected ones")
        counts = {q["queries"] for q in queries.values()}

        redis.Redis.from_url(redis_url).flushdb()
        hidden = set(setup["hidden"])
        key = setup["customer"]["key"]
        runs: list[dict[str, Any]] = []
        with uvicorn_running(run_env, args.workers) as port:
            server_pid = _server_pid(port)
            for clients in args.clients:
                by_page: dict[str, Any] = {}
                all_times: list[float] = []
                seconds = 0.0
                window = CpuWindow(server_pid, None, url, run_db)
                window.start()
                for number, expected in setup["expected"].items():
                    result = requests_run(port, key, int(number), expected, hidden, args.requests, clients, args.warmup)
                    all_times += result.pop("_times")
                    seconds += result["seconds"]
                    by_page[f"page {number}"] = result
                    lat = result["latency_ms"]
                    print(
                        f"  {clients} client(s), page {number}: p50 {lat.get('p50')} p95 {lat.get('p95')}"
                        f" p99 {lat.get('p99')} max {lat.get('max')} ms, {result['requests_per_second']} req/s,"
                        f" statuses {result['statuses']}, wrong {result['wrong_answers']}",
                        flush=True,
                    )
                    if result["statuses"] != {"200": args.requests} or result["wrong_answers"] or result["errors"]:
                        failures.append(
                            f"{clients} client(s), page {number}: statuses {result['statuses']},"
                            f" {result['wrong_answers']} wrong answers {result['wrong_examples'][:3]},"
                            f" errors {result['errors'][:3]}"
                        )
                cpu = window.stop(len(all_times))
                runs.append(
                    {
                        "clients": clients,
                        "pages": by_page,
                        "overall": {
                            "requests": len(all_times),
                            "seconds": round(seconds, 3),
                            "requests_per_second": round(len(all_times) / seconds, 1) if seconds else None,
                            "latency_ms": _percentiles(all_times),
                        },
                        "cpu": cpu,
                    }
                )
                o = runs[-1]["overall"]
                print(
                    f"  {clients} client(s), overall: p50 {o['latency_ms'].get('p50')} p95 {o['latency_ms'].get('p95')}"
                    f" p99 {o['latency_ms'].get('p99')} ms, {o['requests_per_second']} req/s;"
                    f" CPU a request: server {cpu['ms_per_call'].get('server')} ms,"
                    f" PostgreSQL {cpu['ms_per_call'].get('postgres')} ms, bench {cpu['ms_per_call'].get('bench')} ms",
                    flush=True,
                )
        report["runs"] = runs
        log = var_dir / "uvicorn.log"
        if log.exists():
            text = log.read_text(errors="replace")
            report["server_log"] = {w: text.count(w) for w in ("WARNING", "ERROR", "Traceback")}
            if "Traceback" in text:
                report["server_log"]["tail"] = text[-3000:]
        worst = max((r["overall"]["latency_ms"].get("p95", 0) for r in runs), default=None)
        worst_page = max(
            (p["latency_ms"].get("p95", 0) for r in runs for p in r["pages"].values()),
            default=None,
        )
        report["goal"] = {
            "goal": "constant queries, p95 < 150 ms",
            "queries_per_page": {name: q["queries"] for name, q in queries.items()},
            "constant_queries": len(counts) == 1,
            "worst_overall_p95_ms": worst,
            "worst_page_p95_ms": worst_page,
            "p95_met_by_clients": {
                str(r["clients"]): all(p["latency_ms"].get("p95", 1e9) < 150 for p in r["pages"].values()) for r in runs
            },
        }
    finally:
        if not args.keep_databases:
            for name in (run_db, template):
                database_drop(url, name)
        with suppress(Exception):
            redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(work, ignore_errors=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["failures"] = failures
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"portal-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2, default=str))

    listed = setup["customer"]["listed"]
    print(f"\nHelp-centre list, a customer with {listed:,} requests ({args.workers} server process(es)):")
    print("| clients | page | p50 ms | p95 ms | p99 ms | max ms | req/s | queries |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        rows = [*run["pages"].items(), ("overall", run["overall"])]
        for name, r in rows:
            lat = r["latency_ms"]
            q = queries.get(name, {}).get("queries", "")
            print(
                f"| {run['clients']} | {name} | {lat.get('p50')} | {lat.get('p95')} | {lat.get('p99')}"
                f" | {lat.get('max')} | {r['requests_per_second']} | {q} |"
            )
    goal = report["goal"]
    print(
        f"queries per page: {goal['queries_per_page']} (constant: {goal['constant_queries']});"
        f" p95 < 150 ms on every page: {goal['p95_met_by_clients']} (by number of clients)"
    )
    print(f"JSON: {path}")
    if failures:
        raise SystemExit("FAILED:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
