"""Intake benchmark: mail and chat messages per second through the real entry points, on PostgreSQL.

Modes (each run against a fresh database, copied from a migrated template):

- ``imap``: the corpus (bench/intake_corpus.py) appended to a real Dovecot
  mailbox, then ``mailbox_poll`` in one process until the mailbox is drained;
- ``http``: ``uvicorn servicedesk.asgi:application`` with ``DEBUG`` off, the
  corpus POSTed to ``/api/v1/inbound/email/`` (signed) by 1 and 4 clients, with
  1 and 2 uvicorn worker processes;
- ``pipe``: ``manage.py ingest_email`` once per mail for a sample, as an MTA
  pipe transport runs it;
- ``chat``: one-line chat messages appended to 50 open tickets through
  ``inbound_message_receive`` (channel ``chat``, trusted reference), by one
  process and by two side by side (50 tickets each), as the web server's two
  worker processes would take them;
- ``peer``: our ``imap`` run and django-helpdesk's ``get_email`` over the same
  mailbox contents, interleaved, with ``--peer-venv`` (see bench/README.md);
- ``all``: every mode above (``peer`` only with ``--peer-venv``).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_bench13 REDIS_URL=redis://127.0.0.1:6379/6 \
        .venv/bin/python bench/bench_intake.py all --peer-venv /work/peer/venv

Acknowledgements are never sent: Celery is not eager and no worker runs, so
they stay queued in the broker (Redis with ``REDIS_URL``, else Celery's file
transport), and the benchmark counts them there.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
INBOUND_PATH = "/api/v1/inbound/email/"
INBOUND_SECRET = "bench-intake-secret"  # noqa: S105 - signs the benchmark's own posts
IMAP_PASSWORD_ENV = "SD_BENCH_IMAP_PASSWORD"  # noqa: S105 - the name of a variable
CHAT_TICKETS = 50


# --- Databases ----------------------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _admin(url: str) -> Any:
    import psycopg

    return psycopg.connect(_with_database(url, "postgres"), autocommit=True)


def database_fresh(url: str, name: str, *, template: str | None = None) -> str:
    """Drop ``name`` and create it again (as a copy of ``template`` when given); its URL."""
    with _admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return _with_database(url, name)


def database_drop(url: str, name: str) -> None:
    with _admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_version(url: str) -> str:
    with _admin(url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


# --- Environment of the product's processes -----------------------------------------------------------------


class Bench:
    """What every run shares: the server, the names of its databases, the corpus, the broker."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = os.environ["DATABASE_URL"]
        self.base = _database_name(self.url)
        self.template = f"{self.base}_tpl"
        self.run_db = f"{self.base}_run"
        self.redis_url = "" if args.broker == "filesystem" else os.environ.get("REDIS_URL", "")
        self.corpus_dir: Path = args.corpus
        self.mails: list[tuple[str, bytes]] = []
        self.manifest: list[dict[str, Any]] = []
        self.dovecot: Any = None
        self.work = Path(tempfile.mkdtemp(prefix="sd-bench-intake-"))

    def env(self, database_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
            "DEBUG": "false",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "LOG_LEVEL": "WARNING",
            "SERVICEDESK_VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("REDIS_URL", None)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(extra)
        return env

    def fresh_run(self) -> tuple[str, Path]:
        """A fresh database copied from the migrated template, an empty var directory, an empty broker."""
        url = database_fresh(self.url, self.run_db, template=self.template)
        var_dir = self.work / f"var-{time.monotonic_ns()}"
        var_dir.mkdir()
        if self.redis_url:
            import redis

            redis.Redis.from_url(self.redis_url).flushdb()
        return url, var_dir

    def prepare(self) -> None:
        from bench.intake_corpus import corpus_build, corpus_write

        if not (self.corpus_dir / "manifest.json").exists() or self.args.regenerate:
            corpus_write(corpus_build(count=self.args.count, seed=self.args.seed), self.corpus_dir)
        self.mails = [(p.name, p.read_bytes()) for p in sorted(self.corpus_dir.glob("*.eml"))]
        self.manifest = json.loads((self.corpus_dir / "manifest.json").read_text())
        print(f"corpus: {len(self.mails)} mails in {self.corpus_dir}", flush=True)
        url = database_fresh(self.url, self.template)
        var_dir = self.work / "var-template"
        var_dir.mkdir()
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input"],
            cwd=ROOT,
            env=self.env(url, var_dir),
            check=True,
            capture_output=True,
        )
        print(f"template database {self.template} migrated", flush=True)

    def cleanup(self) -> None:
        if self.dovecot is not None:
            self.dovecot.stop()
            shutil.rmtree(self.dovecot.root.parent, ignore_errors=True)
        if not self.args.keep_databases:
            for name in (self.run_db, self.template, f"{self.base}_peer_run", f"{self.base}_peer_tpl"):
                database_drop(self.url, name)
        shutil.rmtree(self.work, ignore_errors=True)

    # Dovecot ---------------------------------------------------------------------------------------------

    def imap_server(self) -> Any:
        if self.dovecot is None:
            from tests.channels_app.email.dovecot import dovecot_start

            root = Path(tempfile.mkdtemp(prefix="sd-bench-dovecot-"))
            root.chmod(0o711)
            self.dovecot = dovecot_start(root / "server", tls=True)
        return self.dovecot

    def mailbox_load(self) -> tuple[str, float]:
        """A new mailbox user holding the whole corpus, appended in order (UID n is mail n); (user, seconds)."""
        server = self.imap_server()
        user = server.new_user()
        started = time.perf_counter()
        client = server.client(user)
        try:
            for _name, raw in self.mails:
                typ, data = client.append("INBOX", "", None, raw)
                if typ != "OK":
                    raise SystemExit(f"IMAP APPEND failed: {data!r}")
        finally:
            client.logout()
        return user, time.perf_counter() - started

    def mailbox_waiting(self, user: str) -> dict[str, int]:
        """Messages in the user's INBOX: all, unseen, not deleted."""
        client = self.dovecot.client(user)
        try:
            client.select("INBOX", readonly=True)
            counts = {}
            for label, criteria in (("all", "ALL"), ("unseen", "UNSEEN"), ("undeleted", "UNDELETED")):
                _typ, data = client.uid("SEARCH", criteria)
                counts[label] = len((data[0] or b"").split())
            return counts
        finally:
            client.logout()


# --- Child processes (Django set up inside) -----------------------------------------------------------------


def _child(step: str, *args: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, __file__, "--step", step, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class StatementCounter:
    """Counts the SQL statements a connection executes, by their first word (cheap: no SQL kept)."""

    def __init__(self) -> None:
        self.total = 0
        self.kinds: Counter[str] = Counter()

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.total += 1
        self.kinds[sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"] += 1
        return execute(sql, params, many, context)


def _setup_django() -> None:
    import django

    django.setup()


def queued_tasks() -> dict[str, int]:
    """Tasks waiting in the broker, by task name (nothing consumes them: no worker runs)."""
    from django.conf import settings

    names: Counter[str] = Counter()
    url = os.environ.get("REDIS_URL", "")
    if url:
        import redis

        client = redis.Redis.from_url(url)
        for key in client.scan_iter():
            if client.type(key) != b"list":
                continue
            for item in client.lrange(key, 0, -1):
                names[json.loads(item).get("headers", {}).get("task", "?")] += 1
    else:
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
        for path in folder.glob("*.msg"):
            names[json.loads(path.read_text()).get("headers", {}).get("task", "?")] += 1
    return dict(sorted(names.items()))


def step_counts(manifest_path: str | None = None) -> dict[str, Any]:
    """What the database holds after a run: every mail's row and outcome, tickets, messages, queued tasks."""
    from django.db.models import Count

    from channels_app.email.models import InboundEmail
    from servicedesk.tickets.models import Customer, Message, Ticket

    statuses = dict(InboundEmail.objects.values_list("status").annotate(n=Count("pk")).order_by())
    reasons = dict(
        InboundEmail.objects.filter(status=InboundEmail.Status.QUARANTINED)
        .values_list("quarantine_reason")
        .annotate(n=Count("pk"))
        .order_by()
    )
    result: dict[str, Any] = {
        "inbound_rows": sum(statuses.values()),
        # Text that could not be decoded ends as U+FFFD: how many subjects and messages hold one.
        "replacement_characters": {
            "ticket_subjects": Ticket.objects.filter(subject__contains="\ufffd").count(),
            "message_texts": Message.objects.filter(text__contains="\ufffd").count(),
        },
        "statuses": statuses,
        "quarantine_reasons": reasons,
        "tickets": Ticket.objects.count(),
        "messages": Message.objects.count(),
        "customers": Customer.objects.count(),
        "queued_tasks": queued_tasks(),
    }
    if manifest_path:
        # In arrival order (one process, in order), each mail's ticket is known in advance.
        manifest = json.loads(Path(manifest_path).read_text())
        rows = list(InboundEmail.objects.order_by("pk").values_list("ticket__reference", flat=True))
        expected = [m["expected_reference"] or None for m in manifest]
        result["ticket_as_expected"] = sum(1 for a, b in zip(rows, expected, strict=False) if a == b)
    return result


# Where a profiled drain spends its time: (label, file suffix, function name), cumulative time of each.
PROFILE_PARTS = (
    ("IMAP fetch", "channels_app/email/imap.py", "_fetch"),
    ("IMAP mark as seen", "channels_app/email/imap.py", "_mark"),
    ("email_ingest (all of it)", "channels_app/email/services.py", "email_ingest"),
    ("  duplicate look-up", "channels_app/email/services.py", "_existing"),
    ("  raw mail file written", "channels_app/email/services.py", "_raw_store"),
    ("  parse_email", "channels_app/email/parse.py", "parse_email"),
    ("    charset guess (charset-normalizer)", "channels_app/email/parse.py", "_guess"),
    ("  inbound_message_receive", "servicedesk/tickets/services/intake.py", "inbound_message_receive"),
    ("    HTML sanitised", "servicedesk/core/html.py", "sanitize_html"),
    ("    sender resolved", "servicedesk/tickets/services/customers.py", "sender_resolve"),
    ("    ticket_insert", "servicedesk/tickets/services/tickets.py", "ticket_insert"),
    (
        "    acknowledgement prepared",
        "servicedesk/tickets/services/acknowledgements.py",
        "ticket_acknowledgement_prepare",
    ),
    ("    attachments stored", "servicedesk/tickets/services/attachments.py", "attachment_store"),
    ("    events stored", "servicedesk/tickets/events.py", "events_store"),
    ("  after commit (tasks enqueued)", "servicedesk/tickets/services/intake.py", "_after_commit"),
    ("  bouncing mark cleared", "servicedesk/tickets/services/customers.py", "identity_bouncing_clear_for_address"),
    ("SQL executed (psycopg)", "psycopg/cursor.py", "execute"),
    ("commits (psycopg)", "psycopg/connection.py", "commit"),
)
PROFILE_TOP = 40


def _profile_parts(profile: Any) -> dict[str, Any]:
    """Cumulative seconds of each part in PROFILE_PARTS, and the product's functions that took longest."""
    import pstats

    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    parts = {}
    for label, suffix, name in PROFILE_PARTS:
        parts[label] = round(
            sum(v[3] for (path, _line, func), v in stats.items() if func == name and path.endswith(suffix)), 2
        )
    ours = []
    for (path, _line, func), v in stats.items():
        relative = path.split(f"{ROOT}/", 1)[-1]
        if relative.startswith(("servicedesk/", "channels_app/")):
            ours.append((round(v[3], 2), round(v[2], 2), v[1], f"{relative}:{func}"))
    top = [
        {"function": name, "cumulative": cumulative, "own": own, "calls": calls}
        for cumulative, own, calls, name in sorted(ours, reverse=True)[:PROFILE_TOP]
    ]
    return {"parts": parts, "top": top}


def step_imap(user: str, port: str, profile: str = "") -> dict[str, Any]:
    """Drain the mailbox with ``mailbox_poll`` in this process, counting polls and SQL statements
    (and, with ``profile``, under cProfile: the seconds spent in each part of the path)."""
    import cProfile

    from django.conf import settings
    from django.db import connection

    from channels_app.email.imap import mailbox_poll
    from channels_app.email.models import MailAccount

    account = MailAccount.objects.create(
        name="bench",
        host="127.0.0.1",
        port=int(port),
        security=MailAccount.Security.TLS,
        username=user,
        password_env=IMAP_PASSWORD_ENV,
    )
    counter = StatementCounter()
    polls: list[dict[str, Any]] = []
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    with connection.execute_wrapper(counter):
        while True:
            poll_started = time.perf_counter()
            report = mailbox_poll(account=account)
            polls.append(report.as_dict() | {"seconds": round(time.perf_counter() - poll_started, 2)})
            if report.error or report.fetched == 0:
                break
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    fetched = sum(int(p["fetched"]) for p in polls)
    profiled = {"profile_seconds": _profile_parts(profiler)} if profiler else {}
    return profiled | {
        "seconds": round(seconds, 2),
        "fetched": fetched,
        "messages_per_second": round(fetched / seconds, 1) if seconds else None,
        "polls": len(polls),
        "poll_settings": {key: value for key, value in settings.SERVICEDESK_EMAIL.items() if key.startswith("IMAP_")},
        "poll_reports": polls,
        "statements": counter.total,
        "statements_per_message": round(counter.total / fetched, 1) if fetched else None,
        "statements_by_kind_per_message": {k: round(v / fetched, 2) for k, v in counter.kinds.most_common()}
        if fetched
        else {},
        "error": polls[-1]["error"] if polls else "",
    }


def step_chat(messages: str, name: str = "", start_at: str = "") -> dict[str, Any]:
    """Open 50 chat tickets (untimed), then append ``messages`` one-line messages round robin (timed).

    ``name`` keeps this process's visitors apart from another's; ``start_at``
    (a ``time.time()`` value) holds the timed part until then, so processes
    run side by side start together."""
    from django.db import connection

    from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
    from servicedesk.tickets.models import Channel
    from servicedesk.tickets.services.intake import inbound_message_receive

    visitors = [SenderIdentity("chat", f"visitor-{name}{n}", f"Visitor {n}") for n in range(CHAT_TICKETS)]
    references = []
    for n, visitor in enumerate(visitors):
        result = inbound_message_receive(
            inbound=InboundMessage(
                channel=Channel.CHAT,
                external_id=f"chat-open-{name}{n}",
                sender=visitor,
                text=f"Hello, I need help ({n})",
            )
        )
        references.append(result.ticket.reference)
    total = int(messages)
    counter = StatementCounter()
    outcomes: Counter[str] = Counter()
    if start_at:
        time.sleep(max(0.0, float(start_at) - time.time()))
    started_wall = time.time()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        for i in range(total):
            n = i % CHAT_TICKETS
            result = inbound_message_receive(
                inbound=InboundMessage(
                    channel=Channel.CHAT,
                    external_id=f"chat-{name}{i}",
                    sender=visitors[n],
                    text=f"Still waiting, message {i}",
                    ticket_reference=references[n],
                    reference_trusted=True,
                )
            )
            outcomes[result.outcome.value] += 1
    seconds = time.perf_counter() - started
    return {
        "tickets": CHAT_TICKETS,
        "messages": total,
        "seconds": round(seconds, 2),
        "started": started_wall,
        "ended": started_wall + seconds,
        "messages_per_second": round(total / seconds, 1),
        "outcomes": dict(outcomes),
        "statements_per_message": round(counter.total / total, 1),
        "statements_by_kind_per_message": {k: round(v / total, 2) for k, v in counter.kinds.most_common()},
    }


# --- Modes ------------------------------------------------------------------------------------------------


def _lost(counts: dict[str, Any], expected: int) -> int:
    """Mails with no final outcome: no row at all, or a row left ``received``."""
    finished = sum(n for status, n in counts["statuses"].items() if status != "received")
    return expected - finished


def run_imap(bench: Bench, *, profile: bool = False) -> dict[str, Any]:
    user, load_seconds = bench.mailbox_load()
    url, var_dir = bench.fresh_run()
    env = bench.env(
        url,
        var_dir,
        SD_IMAP_CA_FILE=str(bench.dovecot.ca_file),
        **{IMAP_PASSWORD_ENV: "imap-test-secret"},
    )
    process_started = time.perf_counter()
    result = _child("imap", user, str(bench.dovecot.imaps_port), *(["profile"] if profile else []), env=env)
    # With Django's start-up, as the peer's figure (a get_email process) is taken.
    result["process_seconds"] = round(time.perf_counter() - process_started, 2)
    result["process_messages_per_second"] = round(result["fetched"] / result["process_seconds"], 1)
    counts = _child("counts", str(bench.corpus_dir / "manifest.json"), env=env)
    waiting = bench.mailbox_waiting(user)
    result |= {
        "load_seconds": round(load_seconds, 2),
        "counts": counts,
        "lost": _lost(counts, len(bench.mails)),
        "left_unseen_in_mailbox": waiting["unseen"],
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    print(
        f"  ours imap: {result['messages_per_second']} msg/s ({result['fetched']} in {result['seconds']} s,"
        f" {result['polls']} polls), {result['statements_per_message']} statements/msg, lost {result['lost']}",
        flush=True,
    )
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def uvicorn_running(env: dict[str, str], workers: int) -> Iterator[int]:
    port = _free_port()
    # The product's web server (servicedesk/serve.py), as scripts/run, the image and Compose start it.
    command = [
        str(VENV_BIN / "python"),
        "-m",
        "servicedesk.serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
    ]
    log = open(env["SERVICEDESK_VAR_DIR"] + "/uvicorn.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"uvicorn did not start: {Path(log.name).read_text()[-3000:]}")
            time.sleep(0.2)
        # Each worker process imports the URL conf on its first request: warm them all.
        for _ in range(4 * workers):
            conn.request("GET", "/healthz")
            conn.getresponse().read()
        conn.close()
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _post_corpus(mails: list[tuple[str, bytes]], port: int, clients: int) -> dict[str, Any]:
    """POST every mail once (in corpus order, taken by ``clients`` keep-alive connections at once)."""
    next_index = itertools.count()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    retries = Counter[int]()
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                index = next(next_index)
            if index >= len(mails):
                break
            body = mails[index][1]
            signature = "sha256=" + hmac.new(INBOUND_SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "message/rfc822", "X-ServiceDesk-Signature": signature}
            for _attempt in range(30):
                try:
                    conn.request("POST", INBOUND_PATH, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    with lock:
                        errors.append(f"{mails[index][0]}: {type(exc).__name__}: {exc}")
                    continue
                if response.status in (429, 503):
                    with lock:
                        retries[response.status] += 1
                    time.sleep(0.5)
                    continue
                with lock:
                    statuses[response.status] += 1
                    if response.status == 200:
                        outcomes[json.loads(data)["outcome"]] += 1
                    else:
                        errors.append(f"{mails[index][0]}: {response.status} {data[:200]!r}")
                break
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(seconds, 2),
        "messages_per_second": round(len(mails) / seconds, 1),
        "statuses": dict(statuses),
        "outcomes": dict(outcomes),
        "retried": dict(retries),
        "errors": errors[:20],
    }


def run_http(bench: Bench, *, clients: int, workers: int) -> dict[str, Any]:
    url, var_dir = bench.fresh_run()
    env = bench.env(
        url,
        var_dir,
        SD_INBOUND_EMAIL_SECRET=INBOUND_SECRET,
        # The endpoint's default limit (600/minute per client IP) would be the measurement.
        SD_API_THROTTLE_INBOUND_EMAIL=bench.args.http_throttle,
    )
    with uvicorn_running(env, workers) as port:
        result = _post_corpus(bench.mails, port, clients)
    manifest = str(bench.corpus_dir / "manifest.json") if clients == 1 else None
    counts = _child("counts", *([manifest] if manifest else []), env=env)
    result |= {
        "workers": workers,
        "counts": counts,
        "lost": _lost(counts, len(bench.mails)),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    print(
        f"  http {workers} worker(s), {clients} client(s): {result['messages_per_second']} msg/s"
        f" ({result['seconds']} s), statuses {result['statuses']}, lost {result['lost']}",
        flush=True,
    )
    return result


def run_pipe(bench: Bench) -> dict[str, Any]:
    """``manage.py ingest_email`` once per mail of an evenly spread sample (a new process each, as an MTA runs it)."""
    sample_size = min(bench.args.pipe_sample, len(bench.mails))
    step = len(bench.mails) / sample_size
    sample = [bench.mails[int(i * step)] for i in range(sample_size)]
    url, var_dir = bench.fresh_run()
    env = bench.env(url, var_dir)
    outputs: Counter[str] = Counter()
    failures: list[str] = []
    started = time.perf_counter()
    for name, raw in sample:
        done = subprocess.run(
            [PYTHON, "manage.py", "ingest_email"], cwd=ROOT, env=env, input=raw, capture_output=True, check=False
        )
        if done.returncode != 0:
            failures.append(f"{name}: exit {done.returncode}: {done.stderr.decode(errors='replace')[-300:]}")
        outputs[done.stdout.decode(errors="replace").split(" ", 1)[0] or "?"] += 1
    seconds = time.perf_counter() - started
    # The floor: a process that only starts Django and exits.
    floor_started = time.perf_counter()
    for _ in range(5):
        subprocess.run([PYTHON, "manage.py", "check", "--fail-level", "ERROR"], cwd=ROOT, env=env, capture_output=True)
    startup = (time.perf_counter() - floor_started) / 5
    counts = _child("counts", env=env)
    result = {
        "sample": sample_size,
        "seconds": round(seconds, 2),
        "messages_per_second": round(sample_size / seconds, 2),
        "ms_per_message": round(1000 * seconds / sample_size),
        "django_start_ms": round(1000 * startup),
        "outputs": dict(outputs),
        "failures": failures[:10],
        "counts": counts,
        "lost": _lost(counts, sample_size),
    }
    print(
        f"  pipe: {result['messages_per_second']} msg/s ({result['ms_per_message']} ms each;"
        f" `manage.py check` alone {result['django_start_ms']} ms), lost {result['lost']}",
        flush=True,
    )
    return result


def run_chat(bench: Bench, processes: int = 1) -> dict[str, Any]:
    """``--chat-messages`` messages from each of ``processes`` processes side by side, each on
    50 tickets of its own; the rate is all their messages over the time from their
    common start to the last one's end."""
    url, var_dir = bench.fresh_run()
    env = bench.env(url, var_dir)
    messages = str(bench.args.chat_messages)
    if processes == 1:
        result = _child("chat", messages, env=env)
        result["processes"] = 1
    else:
        start_at = str(time.time() + 8)  # after every child has set Django up and opened its tickets
        children = [
            subprocess.Popen(
                [PYTHON, __file__, "--step", "chat", messages, f"p{n}-", start_at],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(processes)
        ]
        parts = []
        for child in children:
            out, err = child.communicate()
            if child.returncode != 0:
                raise SystemExit(f"step chat failed:\n{err[-6000:]}")
            parts.append(json.loads(out.strip().splitlines()[-1]))
        if max(part["started"] for part in parts) - float(start_at) > 1:
            raise SystemExit("a chat process started late: raise the start delay")
        total = sum(part["messages"] for part in parts)
        seconds = max(part["ended"] for part in parts) - float(start_at)
        outcomes: Counter[str] = Counter()
        for part in parts:
            outcomes.update(part["outcomes"])
        result = {
            "processes": processes,
            "tickets": CHAT_TICKETS * processes,
            "messages": total,
            "seconds": round(seconds, 2),
            "messages_per_second": round(total / seconds, 1),
            "outcomes": dict(outcomes),
            "statements_per_message": parts[0]["statements_per_message"],
            "per_process": [part["messages_per_second"] for part in parts],
        }
    print(
        f"  chat, {processes} process(es): {result['messages_per_second']} msg/s"
        f" ({result['messages']} in {result['seconds']} s), {result['statements_per_message']} statements/msg",
        flush=True,
    )
    return result


def _median(runs: list[dict[str, Any]], key: str = "messages_per_second") -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


# --- The peer: django-helpdesk ------------------------------------------------------------------------------

PEER_SETTINGS = """
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "peer-benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "helpdesk",
]
SITE_ID = 1
# Teams need the optional pinax-teams package (the "teams" extra); the mail path does not use them.
HELPDESK_TEAMS_MODE_ENABLED = False
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "peerdesk.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": {name!r}, "HOST": {host!r}, "PORT": {port!r}, "USER": {user!r}, "PASSWORD": {password!r},
}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
MEDIA_ROOT = {media!r}
DEFAULT_FROM_EMAIL = "support@servicedesk.example"
# Its notifications are rendered and handed to a backend that sends nothing.
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "ERROR"},
}
"""

PEER_URLS = """
from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls), path("", include("helpdesk.urls"))]
"""

PEER_SETUP = """
from django.db import connection
from helpdesk.models import Queue

Queue.objects.create(
    title="Support", slug="SD", email_address="support@servicedesk.example",
    allow_email_submission=True, email_box_type="imap", email_box_host="127.0.0.1",
    email_box_port={port}, email_box_ssl=True, email_box_user={user!r}, email_box_pass={password!r},
    email_box_imap_folder="INBOX", email_box_interval=0, logging_type="error",
)
# Its tickets are numbered like ours (SD-1001 first), so the corpus's subject tags name the same tickets.
with connection.cursor() as cursor:
    cursor.execute("SELECT setval(pg_get_serial_sequence('helpdesk_ticket', 'id'), 1000)")
"""

PEER_COUNTS = """
import json
from helpdesk.models import Ticket, FollowUp, FollowUpAttachment
print(json.dumps({
    "tickets": Ticket.objects.count(),
    "followups": FollowUp.objects.count(),
    "attachments": FollowUpAttachment.objects.count(),
    "tickets_unknown_sender": Ticket.objects.filter(submitter_email="Unknown Sender").count(),
    "replacement_characters": {
        "ticket_titles": Ticket.objects.filter(title__contains="\\ufffd").count(),
        "followup_texts": FollowUp.objects.filter(comment__contains="\\ufffd").count(),
    },
}))
"""


class Peer:
    """django-helpdesk in its own virtual environment, a throwaway project in a temporary directory."""

    def __init__(self, bench: Bench, venv: Path) -> None:
        self.bench = bench
        self.python = venv / "bin" / "python"
        if not self.python.exists():
            raise SystemExit(f"--peer-venv {venv}: no bin/python there")
        self.project = bench.work / "peerproject"
        self.template = f"{bench.base}_peer_tpl"
        self.run_db = f"{bench.base}_peer_run"

    def version(self) -> dict[str, str]:
        done = subprocess.run(
            [
                str(self.python),
                "-c",
                "import json, django, importlib.metadata as m;"
                "print(json.dumps({'django-helpdesk': m.version('django-helpdesk'), 'django': django.get_version(),"
                " 'python': __import__('platform').python_version()}))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    def _write_project(self, database: str) -> None:
        parts = urlsplit(self.bench.url)
        package = self.project / "peerdesk"
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text("")
        media = self.bench.work / "peer-media"
        media.mkdir(exist_ok=True)
        (package / "settings.py").write_text(
            PEER_SETTINGS.replace("{name!r}", repr(database))
            .replace("{host!r}", repr(parts.hostname or ""))
            .replace("{port!r}", repr(str(parts.port or 5432)))
            .replace("{user!r}", repr(parts.username or ""))
            .replace("{password!r}", repr(parts.password or ""))
            .replace("{media!r}", repr(str(media)))
        )
        (package / "urls.py").write_text(PEER_URLS)
        (self.project / "manage.py").write_text(
            "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'peerdesk.settings')\n"
            "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n"
        )

    def manage(self, *args: str, check: bool = True, timeout: int | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
        done = subprocess.run(
            [str(self.python), "manage.py", *args],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise SystemExit(f"peer manage.py {args[0]} failed:\n{done.stderr[-4000:]}")
        return done

    def prepare(self) -> None:
        database_fresh(self.bench.url, self.template)
        self._write_project(self.template)
        self.manage("migrate", "--no-input")
        self._write_project(self.run_db)
        print(f"peer: django-helpdesk project in {self.project}, template database {self.template}", flush=True)

    def run(self) -> dict[str, Any]:
        bench = self.bench
        user, load_seconds = bench.mailbox_load()
        database_fresh(bench.url, self.run_db, template=self.template)
        server = bench.dovecot
        self.manage(
            "shell",
            "-c",
            PEER_SETUP.format(port=server.imaps_port, user=user, password="imap-test-secret"),  # noqa: S106
        )
        # get_email takes every message not flagged \\Deleted in one pass; a message that makes it raise
        # ends the pass. It runs again while it makes progress.
        runs: list[dict[str, Any]] = []
        started = time.perf_counter()
        waiting = bench.mailbox_waiting(user)["undeleted"]
        while True:
            run_started = time.perf_counter()
            done = self.manage("get_email", check=False, timeout=3600)
            left = bench.mailbox_waiting(user)["undeleted"]
            runs.append(
                {
                    "seconds": round(time.perf_counter() - run_started, 2),
                    "exit": done.returncode,
                    "taken": waiting - left,
                    "stderr_tail": done.stderr[-1500:],
                }
            )
            if left == 0 or left == waiting:
                break
            waiting = left
        seconds = time.perf_counter() - started
        counts = json.loads(self.manage("shell", "-c", PEER_COUNTS).stdout.strip().splitlines()[-1])
        taken = sum(r["taken"] for r in runs)
        result = {
            "seconds": round(seconds, 2),
            "taken_from_mailbox": taken,
            "left_in_mailbox": bench.mailbox_waiting(user)["undeleted"],
            "messages_per_second": round(taken / seconds, 1) if seconds else None,
            "get_email_runs": runs,
            "load_seconds": round(load_seconds, 2),
            "counts": counts,
            "load_average_after": round(os.getloadavg()[0], 2),
        }
        print(
            f"  peer imap: {result['messages_per_second']} msg/s ({taken} taken in {result['seconds']} s,"
            f" {len(runs)} get_email run(s)), left in mailbox {result['left_in_mailbox']},"
            f" tickets {counts['tickets']}, follow-ups {counts['followups']}",
            flush=True,
        )
        return result


# --- Main -------------------------------------------------------------------------------------------------


def mode_imap(bench: Bench) -> dict[str, Any]:
    print(f"imap: {bench.args.runs} run(s)", flush=True)
    runs = [run_imap(bench) for _ in range(bench.args.runs)]
    result: dict[str, Any] = {"runs": runs, "median_messages_per_second": _median(runs)}
    if bench.args.profile:
        # A further run under cProfile (slower): where the time goes, not how much there is.
        result["profiled_run"] = run_imap(bench, profile=True)
    return result


def mode_peer(bench: Bench) -> dict[str, Any]:
    if not bench.args.peer_venv:
        raise SystemExit("mode peer needs --peer-venv PATH (a virtual environment with django-helpdesk installed)")
    peer = Peer(bench, bench.args.peer_venv)
    version = peer.version()
    peer.prepare()
    print(f"peer vs ours, interleaved: {bench.args.runs} pair(s)", flush=True)
    ours, theirs = [], []
    for _ in range(bench.args.runs):
        ours.append(run_imap(bench))
        theirs.append(peer.run())
    ours_median, peer_median = _median(ours, "process_messages_per_second"), _median(theirs)
    return {
        "peer": version,
        "ours": {
            "runs": ours,
            "median_messages_per_second": ours_median,
            "median_in_process_messages_per_second": _median(ours),
        },
        "django_helpdesk": {"runs": theirs, "median_messages_per_second": peer_median},
        "ratio_ours_to_peer": round(ours_median / peer_median, 2) if ours_median and peer_median else None,
    }


def mode_http(bench: Bench) -> dict[str, Any]:
    results = []
    for workers in bench.args.workers:
        for clients in bench.args.clients:
            runs = [run_http(bench, clients=clients, workers=workers) for _ in range(bench.args.http_runs)]
            results.append(
                {
                    "workers": workers,
                    "clients": clients,
                    "runs": runs,
                    "median_messages_per_second": _median(runs),
                }
            )
    return {"configurations": results}


def mode_pipe(bench: Bench) -> dict[str, Any]:
    return run_pipe(bench)


def mode_chat(bench: Bench) -> dict[str, Any]:
    configurations = []
    for processes in bench.args.chat_processes:
        runs = [run_chat(bench, processes) for _ in range(bench.args.runs)]
        configurations.append({"processes": processes, "runs": runs, "median_messages_per_second": _median(runs)})
    return {"configurations": configurations}


def main() -> None:
    if sys.argv[1:2] == ["--step"]:
        # A measured step in a child process: bench_intake.py --step NAME [ARG ...]; JSON on the last line.
        _setup_django()
        steps: dict[str, Callable[..., dict[str, Any]]] = {"imap": step_imap, "chat": step_chat, "counts": step_counts}
        print(json.dumps(steps[sys.argv[2]](*sys.argv[3:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["imap", "http", "pipe", "chat", "peer", "all"], default="all")
    parser.add_argument("--runs", type=int, default=3, help="Runs of imap, chat and peer pairs (median reported).")
    parser.add_argument("--http-runs", type=int, default=1, help="Runs of each HTTP configuration.")
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--http-throttle", default="1000000/minute", help="SD_API_THROTTLE_INBOUND_EMAIL for http.")
    parser.add_argument("--pipe-sample", type=int, default=50)
    parser.add_argument("--chat-messages", type=int, default=5000, help="Chat messages per process.")
    parser.add_argument(
        "--chat-processes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2],
        help="Chat runs with this many processes side by side (as the web server's workers).",
    )
    parser.add_argument("--corpus", type=Path, default=OUT / "intake-corpus")
    parser.add_argument("--count", type=int, default=2061, help="Mails in a generated corpus.")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--regenerate", action="store_true", help="Write the corpus again even if it exists.")
    parser.add_argument("--peer-venv", type=Path, help="Virtual environment with django-helpdesk (mode peer).")
    parser.add_argument(
        "--broker",
        choices=["redis", "filesystem"],
        default="redis",
        help="Where acknowledgements queue: REDIS_URL (emptied before each run), or Celery's file transport.",
    )
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--profile", action="store_true", help="imap: one more run under cProfile, by part.")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server and database name; the benchmark refuses SQLite.")
    if args.broker == "redis" and not os.environ.get("REDIS_URL"):
        args.broker = "filesystem"
    bench = Bench(args)
    report: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": args.mode,
        "database_server": f"PostgreSQL {server_version(url)}",
        "databases": {"template": bench.template, "run": bench.run_db},
        "broker": f"redis ({bench.redis_url})" if bench.redis_url else "filesystem (Celery file transport)",
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        bench.prepare()
        report["corpus"] = {"directory": str(bench.corpus_dir), "mails": len(bench.mails)}
        report["corpus"]["bytes"] = sum(len(raw) for _name, raw in bench.mails)
        modes = ["peer" if args.peer_venv else "imap", "http", "pipe", "chat"] if args.mode == "all" else [args.mode]
        for mode in modes:
            report[mode] = {"imap": mode_imap, "http": mode_http, "pipe": mode_pipe, "chat": mode_chat}.get(
                mode, mode_peer
            )(bench)
    finally:
        bench.cleanup()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"intake-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
