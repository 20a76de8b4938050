"""Phone webhook benchmark: signed generic CTI events per second into the project's web server.

A day's worth of calls (``--calls``; each a ``newCall``, an ``answer`` and a
``hangup``, callers drawn from ``--callers`` numbers so some call again) is
posted to ``POST /api/v1/phone/events/`` of ``python -m servicedesk.serve``
(``DEBUG`` off, ``--workers`` processes) on PostgreSQL (``DATABASE_URL``: a
fresh database copied from a migrated template, as bench_intake.py does), by
``--clients`` keep-alive connections at once, each call's events in order
and the calls interleaved. Reported: events per second (overall and per
process), the answers' statuses and p50/p95 time, and what the database
holds afterwards (every call, event and session accounted for).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_benchphone .venv/bin/python bench/bench_phone.py

``pop``: ring to screen pop. ``--agents`` agents of the line's queue, each
signed in (a session cookie) with the desk's ``/ws/desk/`` socket open and
online, as many desk pages doing what a desk page does (a ping and a resume
every ``--ping-every`` seconds, every pop read again every ``--pops-every``
seconds); the Redis channel layer (``REDIS_URL``) and, as the product runs
with Redis, a Celery worker that folds each call from its events (``--fold
request``: in the request instead). ``--calls`` calls for each scenario:
``one`` (the event's ``user`` names one agent; one call every ``--interval``
seconds) and ``queue`` (it names nobody: the call rings for every online
agent of the line's queue; one every ``--queue-interval`` seconds). Each
call is hung up once it is measured. Per call: t0 just before the signed
``newCall`` is sent, t1 when the pop frame (``{"type": "phone", "event":
"call", "call": id}``) reaches a ringing agent's socket, t2 when that agent's
``GET /desk/calls/<id>/pop/`` (sent on the frame, as pop.js does) returns
the pop's HTML; ``queue``: t1 at every socket, t2 for ``--sample`` agents a
call. Every frame must arrive and every pop must answer 200, or the run fails.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_benchpop REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/bench_phone.py pop --agents 200 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import http.client
import itertools
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))

from bench_chat import CLK_TCK, LoopLag, _percentiles, proc_tree_cpu_seconds  # noqa: E402
from bench_intake import _admin, _with_database, database_drop, database_fresh, uvicorn_running  # noqa: E402

SECRET = "bench-phone-secret"  # noqa: S105 - the benchmark's own line
PATH = "/api/v1/phone/events/"
LINE = "+35312345678"


def signature(body: bytes, stamp: int) -> str:
    """As docs/phone.md: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
    return f"t={stamp},v1=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def events_for(calls: int, callers: int, seed: int) -> list[list[bytes]]:
    """Each call's three events (JSON bodies), in order; times over the last day."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    numbers = [f"+3538610{n:05d}" for n in range(callers)]
    made = []
    for i in range(calls):
        rang = start + timedelta(seconds=i * 86_000 // max(1, calls))
        call_id = f"bench-{seed}-{i}"
        answered = rang + timedelta(seconds=rng.randint(2, 40))
        ended = answered + timedelta(seconds=rng.randint(30, 600))
        bodies = [
            {
                "event": "newCall",
                "call_id": call_id,
                "from": rng.choice(numbers),
                "to": LINE,
                "direction": "in",
                "user": [f"agent{rng.randint(1, 20)}@example.com"],
                "at": rang.isoformat(),
            },
            {"event": "answer", "call_id": call_id, "answering_user": "agent1@example.com", "at": answered.isoformat()},
            {"event": "hangup", "call_id": call_id, "cause": "normalClearing", "at": ended.isoformat()},
        ]
        made.append([json.dumps(body).encode() for body in bodies])
    return made


def post_all(calls: list[list[bytes]], port: int, clients: int) -> dict[str, Any]:
    """Each client takes the next call and posts its events in order; the calls run side by side."""
    next_call = itertools.count()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    times: list[float] = []
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                index = next(next_call)
            if index >= len(calls):
                break
            for body in calls[index]:
                headers = {
                    "Content-Type": "application/json",
                    "X-ServiceDesk-Signature": signature(body, int(time.time())),
                }
                sent = time.perf_counter()
                try:
                    conn.request("POST", PATH, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                took = time.perf_counter() - sent
                with lock:
                    times.append(took)
                    statuses[response.status] += 1
                    if response.status == 200:
                        outcomes[json.loads(data)["outcome"]] += 1
                    elif len(errors) < 20:
                        errors.append(f"{response.status} {data[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    events = sum(len(c) for c in calls)
    times.sort()
    return {
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_second": round(events / seconds, 1),
        "statuses": dict(statuses),
        "outcomes": dict(outcomes),
        "answer_ms": {
            "p50": round(1000 * statistics.median(times), 2) if times else None,
            "p95": round(1000 * times[int(0.95 * (len(times) - 1))], 2) if times else None,
        },
        "errors": errors[:20],
    }


def counts(url: str) -> dict[str, int]:
    """What the run's database holds: calls, events, phone sessions, callers with a phone identity."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            """
            SELECT (SELECT count(*) FROM phone_channel_call),
                   (SELECT count(*) FROM phone_channel_callevent),
                   (SELECT count(*) FROM tickets_session WHERE channel = 'phone'),
                   (SELECT count(*) FROM tickets_identity WHERE kind = 'phone'),
                   (SELECT count(*) FROM phone_channel_call WHERE state = 'ended' AND outcome = 'answered')
            """
        ).fetchone()
    return dict(zip(["calls", "events", "sessions", "phone_identities", "answered"], row, strict=True))


# --- Ring to pop (``pop``) ---------------------------------------------------------------------------------------

QUEUE_SLUG = "bench-phone"
DESK_NEXT = "/desk/"
SCENARIOS = ("one", "queue")


def step_pop_setup(agents: str, callers: str, out: str) -> dict[str, Any]:
    """The line, its queue, ``agents`` online agents of it with a session each, ``callers`` known callers.

    The line is the default one (signed with SD_PHONE_WEBHOOK_SECRET), with
    its number and queue; its unanswered calls make no callback ticket and
    acknowledge nobody, so a call's hang-up (sent once the call is measured)
    adds no tickets. Each agent is online with a fresh ``seen_at`` (their
    socket's heartbeat keeps it fresh). Each caller is a customer with the
    phone number as identity and one open ticket in the queue, made through
    the intake as a phone contact, so a pop shows a customer with a ticket.
    Written to ``out``: the agents (id, email, cookie) and the callers' numbers.
    """
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from channels_app.phone.models import DEFAULT_LINE_KEY, MissedCalls, PhoneLine
    from servicedesk.accounts.models import User
    from servicedesk.routing.models import AgentProfile, Availability
    from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
    from servicedesk.tickets.models import Queue
    from servicedesk.tickets.services.intake import inbound_message_receive

    now = timezone.now()
    queue = Queue.objects.create(slug=QUEUE_SLUG, name="Bench phone")
    PhoneLine.objects.create(
        key=DEFAULT_LINE_KEY,
        name="Bench line",
        number=LINE,
        queue=queue,
        missed_calls=MissedCalls.NONE,
        acknowledge=False,
    )
    role = Group.objects.get_or_create(name="agent")[0]
    backend = settings.AUTHENTICATION_BACKENDS[0]
    made = []
    for n in range(int(agents)):
        user = User.objects.create_user(username=f"bench-phone-{n}", email=f"agent{n}@bench.example")
        user.groups.add(role)
        queue.members.add(user)
        AgentProfile.objects.update_or_create(user=user, defaults={"availability": Availability.ONLINE, "seen_at": now})
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = backend
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        made.append(
            {"id": user.pk, "email": user.email, "cookie": f"{settings.SESSION_COOKIE_NAME}={store.session_key}"}
        )
    numbers = [f"+3538620{n:05d}" for n in range(int(callers))]
    for n, number in enumerate(numbers):
        inbound_message_receive(
            inbound=InboundMessage(
                channel="phone",
                external_id=f"bench-phone-caller-{n}",
                sender=SenderIdentity(kind="phone", value=number, name=f"Caller {n}"),
                subject=f"Callback about order {1000 + n}",
                text=f"Caller {n} asked to be called back.",
                queue=QUEUE_SLUG,
                language="en",
                received_at=now,
                acknowledge=False,
                route=False,
            )
        )
    Path(out).write_text(json.dumps({"agents": made, "callers": numbers}))
    return {"agents": len(made), "callers": len(numbers)}


class HttpConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams (the bench's clients must not block their loop)."""

    def __init__(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.port, self.reader, self.writer = port, reader, writer
        self.usable = True
        self.idle_since = time.monotonic()

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(port, reader, writer)

    def close(self) -> None:
        self.usable = False
        self.writer.close()

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("closed before the answer")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _sep, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            data = b"".join(parts)
        elif length is not None:
            data = await self.reader.readexactly(length)
        elif status in (204, 304) or method == "HEAD":
            data = b""
        else:
            data = await self.reader.read()
            close = True
        if close:
            self.close()
        self.idle_since = time.monotonic()
        return status, data


class HttpPool:
    """A browser's connections to the desk: kept alive, a new one when all are busy or the server closed them.

    The server closes a connection idle for 5 s (uvicorn's keep-alive); one
    idle for 4 s or that the server has closed is not reused, as a browser
    notices a closed connection before it sends on it.
    """

    IDLE_MAX = 4.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[HttpConnection] = []
        self.retries = 0

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        for attempt in range(2):
            conn = None
            while self.idle:
                candidate = self.idle.pop()
                if candidate.reader.at_eof() or time.monotonic() - candidate.idle_since > self.IDLE_MAX:
                    candidate.close()
                    continue
                conn = candidate
                break
            fresh = conn is None
            if conn is None:
                conn = await HttpConnection.open(self.port)
            try:
                answer = await conn.request(method, path, headers, body)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                conn.close()
                if fresh or attempt:
                    raise
                # A kept connection the server closed as it was reused: again on a new one, as a browser does.
                self.retries += 1
                continue
            if conn.usable:
                self.idle.append(conn)
            return answer
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle = []


def _sample_for(call_pk: int, agents: int, sample: int) -> set[int]:
    """The agents (indexes) who read the pop of a call that rings for all: ``sample`` of them, moving on per call."""
    start = call_pk * sample
    return {(start + k) % agents for k in range(min(sample, agents))}


class Desk:
    """The agents' desk pages: one ``/ws/desk/`` socket each, their pop reads, and their periodic traffic."""

    def __init__(self, port: int, agents: list[dict[str, Any]], args: argparse.Namespace) -> None:
        self.port, self.agents, self.args = port, agents, args
        self.sockets: list[Any] = [None] * len(agents)
        self.cursors = [0] * len(agents)
        self.http = [HttpPool(port) for _ in agents]
        # (call id, agent index) -> monotonic time of the first pop frame; later frames counted.
        self.first: dict[tuple[int, int], float] = {}
        self.repeats = 0
        # (call id, agent index) -> (read started, read done, status, bytes).
        self.fetched: dict[tuple[int, int], tuple[float, float, int, int]] = {}
        self.fetch_errors: Counter[str] = Counter()
        self.fetch_rule: Any = lambda call_pk, index: True
        self.error_frames: Counter[str] = Counter()
        self.closed_unexpectedly: Counter[str] = Counter()
        self.refresh_times: list[float] = []
        self.refresh_statuses: Counter[int] = Counter()
        self.pings = 0
        self.closing = False
        self.tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _headers(self, index: int) -> dict[str, str]:
        return {"Cookie": self.agents[index]["cookie"], "Accept": "text/html"}

    async def connect_all(self, concurrency: int = 20) -> float:
        from websockets.asyncio.client import connect

        limit = asyncio.Semaphore(concurrency)
        origin = f"http://127.0.0.1:{self.port}"

        async def one(index: int) -> None:
            async with limit:
                ws = await connect(
                    f"ws://127.0.0.1:{self.port}/ws/desk/",
                    origin=origin,  # type: ignore[arg-type]
                    additional_headers={"Cookie": self.agents[index]["cookie"]},
                    compression=None,
                    open_timeout=60,
                    ping_interval=None,
                    close_timeout=5,
                    user_agent_header=None,
                )
                hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if hello.get("type") != "hello":
                    raise SystemExit(f"agent socket {index}: first frame {hello}")
                self.cursors[index] = int(hello.get("cursor") or 0)
                self.sockets[index] = ws
                self._spawn(self._read(index, ws))

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(len(self.agents))))
        return time.monotonic() - started

    async def _read(self, index: int, ws: Any) -> None:
        try:
            async for raw in ws:
                now = time.monotonic()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "phone" and frame.get("event") == "call" and isinstance(frame.get("call"), int):
                    key = (frame["call"], index)
                    if key in self.first:
                        self.repeats += 1
                    else:
                        self.first[key] = now
                        if self.fetch_rule(frame["call"], index):
                            self._spawn(self._fetch(key, now))
                elif kind == "changed" and isinstance(frame.get("cursor"), int):
                    self.cursors[index] = max(self.cursors[index], frame["cursor"])
                elif kind == "error":
                    self.error_frames[str(frame.get("code"))] += 1
        except Exception as exc:
            if not self.closing:
                self.closed_unexpectedly[type(exc).__name__] += 1
            return
        if not self.closing:
            self.closed_unexpectedly[f"closed {ws.close_code}"] += 1

    async def _fetch(self, key: tuple[int, int], started: float) -> None:
        """What pop.js does on the frame: read the call's pop for this agent."""
        call_pk, index = key
        try:
            status, data = await self.http[index].request(
                "GET", f"/desk/calls/{call_pk}/pop/?next={DESK_NEXT}", self._headers(index)
            )
        except Exception as exc:
            self.fetch_errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
            return
        self.fetched[key] = (started, time.monotonic(), status, len(data))

    async def _pinging(self, index: int) -> None:
        """As live.js: a ping and a resume every ``--ping-every`` seconds, from a random phase."""
        every = self.args.ping_every
        await asyncio.sleep(random.uniform(0, every))
        while not self.closing:
            ws = self.sockets[index]
            try:
                await ws.send('{"type": "ping"}')
                await ws.send(json.dumps({"type": "resume", "after": self.cursors[index]}))
            except Exception:
                return
            self.pings += 1
            await asyncio.sleep(every)

    async def _refreshing(self, index: int) -> None:
        """As pop.js: every pop of the agent read again every ``--pops-every`` seconds, from a random phase."""
        every = self.args.pops_every
        await asyncio.sleep(random.uniform(0, every))
        while not self.closing:
            started = time.monotonic()
            try:
                status, _data = await self.http[index].request(
                    "GET", f"/desk/calls/pops/?next={DESK_NEXT}", self._headers(index)
                )
            except Exception as exc:
                self.fetch_errors[f"pops {type(exc).__name__}"] += 1
            else:
                self.refresh_statuses[status] += 1
                self.refresh_times.append(time.monotonic() - started)
            await asyncio.sleep(every)

    def background_start(self) -> None:
        for index in range(len(self.agents)):
            if self.args.ping_every > 0:
                self._spawn(self._pinging(index))
            if self.args.pops_every > 0:
                self._spawn(self._refreshing(index))

    async def close(self) -> None:
        self.closing = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets if ws is not None), return_exceptions=True)
        for pool in self.http:
            pool.close()


def _proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _redis_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip().startswith("redis-server"):
                    found.append(int(entry.name))
    return found


def _tree_threads_rss(pid: int) -> list[int]:
    """Threads and resident KiB of a process and its children (a server's worker processes), summed."""
    threads = rss = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    for each in pids:
        with suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    threads += int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
    return [threads, rss]


def _sockets_by_process(port: int) -> dict[str, int]:
    """Established connections to ``port`` per server process (``ss``): how the kernel spread the desks."""
    done = subprocess.run(
        ["ss", "-Htnp", "state", "established", "( sport = :" + str(port) + " )"], capture_output=True, text=True
    )
    counts: Counter[str] = Counter()
    for line in done.stdout.splitlines():
        for pid in re.findall(r"pid=(\d+)", line)[:1]:
            counts[pid] += 1
    return dict(counts)


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuWindow:
    """CPU used between start and stop: the server (all its processes), the Celery worker, the PostgreSQL backends serving the
    run's database (other databases on the same server are someone else's), Redis, the bench itself, and the
    whole machine (what is left is other work on the machine)."""

    def __init__(self, server_pid: int, worker_pid: int | None, admin_url: str, database: str) -> None:
        self.server_pid, self.worker_pid = server_pid, worker_pid
        self.admin_url, self.database = admin_url, database

    def _backends(self) -> list[int]:
        with _admin(self.admin_url) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.database,)
            ).fetchall()
        return [int(r[0]) for r in rows]

    def _now(self, pids: dict[str, list[int]]) -> dict[str, Any]:
        busy, total = _machine_busy()
        return {
            "at": time.monotonic(),
            "server": proc_tree_cpu_seconds(self.server_pid),
            "worker": proc_tree_cpu_seconds(self.worker_pid) if self.worker_pid else 0.0,
            "postgres": {pid: _proc_cpu(pid) for pid in pids["postgres"]},
            "redis": sum(_proc_cpu(pid) or 0.0 for pid in pids["redis"]),
            "bench": time.process_time(),
            "machine_busy": busy,
            "machine_total": total,
        }

    def start(self) -> None:
        self.pids = {"postgres": self._backends(), "redis": _redis_pids()}
        self.before = self._now(self.pids)

    def stop(self, calls: int) -> dict[str, Any]:
        # Backends opened meanwhile count from zero; one closed meanwhile is lost (the pools keep theirs).
        pids = {"postgres": sorted(set(self.pids["postgres"]) | set(self._backends())), "redis": self.pids["redis"]}
        after = self._now(pids)
        seconds = after["at"] - self.before["at"]
        postgres = sum(
            (cpu or 0.0) - (self.before["postgres"].get(pid) or 0.0)
            for pid, cpu in after["postgres"].items()
            if cpu is not None
        )
        used = {
            "server": after["server"] - self.before["server"],
            "worker": after["worker"] - self.before["worker"],
            "postgres": postgres,
            "redis": after["redis"] - self.before["redis"],
            "bench": after["bench"] - self.before["bench"],
        }
        jiffies = after["machine_total"] - self.before["machine_total"]
        busy = (after["machine_busy"] - self.before["machine_busy"]) / jiffies if jiffies else 0.0
        cores = os.cpu_count() or 1
        percent = {k: round(100 * v / seconds, 1) for k, v in used.items()}
        return {
            "seconds": round(seconds, 1),
            "percent_of_one_core": percent,
            "ms_per_call": {k: round(1000 * v / calls, 1) for k, v in used.items()} if calls else {},
            "machine_busy_percent_of_all_cores": round(100 * busy, 1),
            # The machine's busy time not accounted for above, as a share of one core: other work, the kernel.
            "other_percent_of_one_core": round(100 * busy * cores - sum(percent.values()), 1),
        }


def _signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", "X-ServiceDesk-Signature": signature(raw, int(time.time()))}


async def run_scenario(
    desk: Desk,
    pbx: HttpPool,
    db: Any,
    callers: list[str],
    *,
    name: str,
    calls: int,
    cpu: CpuWindow | None,
) -> dict[str, Any]:
    """``calls`` calls ringing one agent (``one``, one every ``--interval`` s) or the whole queue (``queue``,
    one every ``--queue-interval`` s); each hung up once its frames and pop reads are in."""
    args = desk.args
    agents = len(desk.agents)
    ring_all = name.endswith("queue")
    interval = args.queue_interval if ring_all else args.interval
    desk.fetch_rule = (
        (lambda pk, index: index in _sample_for(pk, agents, args.sample)) if ring_all else (lambda pk, index: True)
    )
    records: list[dict[str, Any]] = []
    post_statuses: Counter[int] = Counter()
    lag = LoopLag()
    lag.start()

    async def one(i: int) -> None:
        call_id = f"pop-{name}-{args.seed}-{i}"
        named = None if ring_all else i % agents
        body: dict[str, Any] = {
            "event": "newCall",
            "call_id": call_id,
            "from": callers[i % len(callers)],
            "to": LINE,
            "direction": "in",
        }
        if named is not None:
            body["user"] = [desk.agents[named]["email"]]
        raw, headers = _signed(body)
        t0 = time.monotonic()
        status, data = await pbx.request("POST", PATH, headers, raw)
        answered = time.monotonic()
        post_statuses[status] += 1
        record: dict[str, Any] = {"i": i, "call_id": call_id, "t0": t0, "answer": answered - t0, "status": status}
        records.append(record)
        if status != 200:
            return
        deadline = t0 + args.call_timeout
        # The call's id: its row is made when a worker (or the request) folds the event.
        row = None
        while row is None and time.monotonic() < deadline:
            async with db.cursor() as cursor:
                await cursor.execute("SELECT id FROM phone_channel_call WHERE call_id = %s", (call_id,))
                row = await cursor.fetchone()
            if row is None:
                await asyncio.sleep(0.02)
        if row is None:
            raise SystemExit(f"call {call_id}: answered {status} {data[:200]!r}, but no call made within the timeout")
        pk = int(row[0])
        expected = set(range(agents)) if ring_all else {named}
        readers = _sample_for(pk, agents, args.sample) if ring_all else expected
        record.update(pk=pk, expected=expected, readers=readers)
        while time.monotonic() < deadline:
            if all((pk, a) in desk.first for a in expected) and all((pk, a) in desk.fetched for a in readers):
                break
            await asyncio.sleep(0.01)
        # The caller gives up: the pop goes away (and the next calls find no call ringing on for ever).
        raw, headers = _signed({"event": "hangup", "call_id": call_id, "cause": "cancel"})
        status, _data = await pbx.request("POST", PATH, headers, raw)
        post_statuses[status] += 1

    if cpu is not None:
        cpu.start()
    started = time.monotonic()
    tasks = []
    for i in range(calls):
        await asyncio.sleep(max(0.0, started + i * interval - time.monotonic()))
        tasks.append(asyncio.get_running_loop().create_task(one(i)))
    await asyncio.gather(*tasks)
    cpu_used = cpu.stop(calls) if cpu is not None else None
    # Late and repeated frames (a hang-up's) still count.
    await asyncio.sleep(1.0)
    loop_lag = lag.stop()

    ring, pop, fetch_only, per_call_last, answer = [], [], [], [], []
    expected_frames = received = missing_fetch = 0
    fetch_statuses: Counter[int] = Counter()
    missing_examples: list[list[int]] = []
    # Per call, in order: seconds from the scenario's start, the webhook's answer, the first and last
    # socket's frame, the slowest pop read's end (ms): to see a run drift.
    series: list[list[float | None]] = []
    for record in sorted(records, key=lambda r: r["i"]):
        answer.append(record["answer"])
        if "pk" not in record:
            continue
        pk, t0 = record["pk"], record["t0"]
        expected_frames += len(record["expected"])
        frames = []
        for agent in record["expected"]:
            at = desk.first.get((pk, agent))
            if at is None:
                if len(missing_examples) < 20:
                    missing_examples.append([pk, agent])
                continue
            received += 1
            ring.append(at - t0)
            frames.append(at - t0)
        if frames:
            per_call_last.append(max(frames))
        pops = []
        for agent in record["readers"]:
            got = desk.fetched.get((pk, agent))
            if got is None:
                missing_fetch += 1
                continue
            fetch_statuses[got[2]] += 1
            if got[2] == 200:
                pop.append(got[1] - t0)
                pops.append(got[1] - t0)
                fetch_only.append(got[1] - got[0])
        series.append(
            [
                round(t0 - started, 2),
                round(1000 * record["answer"], 1),
                round(1000 * min(frames), 1) if frames else None,
                round(1000 * max(frames), 1) if frames else None,
                round(1000 * max(pops), 1) if pops else None,
            ]
        )
    expected_by_call = {r["pk"]: r["expected"] for r in records if "pk" in r}
    unexpected = sum(1 for pk, agent in desk.first if pk in expected_by_call and agent not in expected_by_call[pk])
    result = {
        "scenario": name,
        "calls": calls,
        "interval_seconds": interval,
        "agents_rung_per_call": agents if ring_all else 1,
        "frames_expected": expected_frames,
        "frames_received": received,
        "frames_missing": expected_frames - received,
        "missing_examples": missing_examples,
        "frames_unexpected": unexpected,
        "pop_reads_expected": sum(len(r.get("readers", ())) for r in records),
        "pop_read_statuses": dict(fetch_statuses),
        "pop_reads_missing": missing_fetch,
        "event_statuses": dict(post_statuses),
        "ring_to_frame_ms": _percentiles(ring),
        "ring_to_pop_ms": _percentiles(pop),
        "last_socket_per_call_ms": _percentiles(per_call_last),
        "pop_read_ms": _percentiles(fetch_only),
        "event_answer_ms": _percentiles(answer),
        "cpu": cpu_used,
        "server_threads_rss_kib_after": _tree_threads_rss(cpu.server_pid) if cpu is not None else None,
        "bench_loop_lag_ms": loop_lag,
        "per_call": {
            "columns": ["at_s", "answer_ms", "first_frame_ms", "last_frame_ms", "last_pop_ms"],
            "rows": series,
        },
    }
    r, p = result["ring_to_frame_ms"], result["ring_to_pop_ms"]
    print(
        f"  {name}: {calls} calls, frames {received}/{expected_frames}, pops {dict(fetch_statuses)};"
        f" t1-t0 p50 {r.get('p50')} p95 {r.get('p95')} p99 {r.get('p99')} max {r.get('max')} ms;"
        f" t2-t0 p50 {p.get('p50')} p95 {p.get('p95')} p99 {p.get('p99')} max {p.get('max')} ms"
        + (
            f"; server CPU {cpu_used['percent_of_one_core']['server']} %, worker {cpu_used['percent_of_one_core']['worker']} %"
            if cpu_used
            else ""
        ),
        flush=True,
    )
    return result


def _failures(result: dict[str, Any]) -> list[str]:
    wrong = []
    if result["frames_missing"]:
        wrong.append(f"{result['frames_missing']} pop frames never arrived (e.g. {result['missing_examples'][:5]})")
    if result["frames_unexpected"]:
        wrong.append(f"{result['frames_unexpected']} pop frames reached agents the call did not ring for")
    if result["pop_reads_missing"]:
        wrong.append(f"{result['pop_reads_missing']} pop reads did not finish")
    if set(result["pop_read_statuses"]) - {200}:
        wrong.append(f"pop reads answered {result['pop_read_statuses']} (all must be 200)")
    if set(result["event_statuses"]) - {200}:
        wrong.append(f"events answered {result['event_statuses']} (all must be 200)")
    return [f"{result['scenario']}: {w}" for w in wrong]


async def pop_measure(
    port: int,
    pids: tuple[int, int | None],
    setup: dict[str, Any],
    args: argparse.Namespace,
    run_url: str,
    admin_url: str,
) -> dict[str, Any]:
    import psycopg

    run_db = run_url.rsplit("/", 1)[1]
    desk = Desk(port, setup["agents"], args)
    pbx = HttpPool(port)
    db = await psycopg.AsyncConnection.connect(run_url, autocommit=True)
    try:
        connect_seconds = await desk.connect_all()
        spread = _sockets_by_process(port)
        print(
            f"{len(desk.agents)} desk sockets open in {connect_seconds:.1f} s; per server process {spread}", flush=True
        )
        desk.background_start()
        # Lazy imports, pools and the layer's subscriptions of each process: warmed, not measured.
        warm = []
        for name in ("warm-one", "warm-queue"):
            warm.append(await run_scenario(desk, pbx, db, setup["callers"], name=name, calls=args.warmup, cpu=None))
        await asyncio.sleep(2)
        # What the connected desks cost with no call: their pings, resumes, pop refreshes and heartbeats.
        idle = None
        if args.idle_seconds > 0:
            window = CpuWindow(*pids, admin_url, run_db)
            window.start()
            await asyncio.sleep(args.idle_seconds)
            idle = window.stop(0)
            print(f"  no calls for {args.idle_seconds:.0f} s: CPU {idle['percent_of_one_core']}", flush=True)
        scenarios = {}
        for name in args.scenarios:
            scenarios[name] = await run_scenario(
                desk,
                pbx,
                db,
                setup["callers"],
                name=name,
                calls=args.calls,
                cpu=CpuWindow(*pids, admin_url, run_db),
            )
            await asyncio.sleep(2)
        return {
            "connect_seconds": round(connect_seconds, 2),
            "sockets_per_server_process": spread,
            "warm_up": [{k: w[k] for k in ("scenario", "calls", "frames_missing", "pop_read_statuses")} for w in warm],
            "no_calls_cpu": idle,
            "scenarios": scenarios,
            "desk_pings": desk.pings,
            "pops_refreshes": {"statuses": dict(desk.refresh_statuses), "ms": _percentiles(desk.refresh_times)},
            "pop_read_errors": dict(desk.fetch_errors),
            "keep_alive_retries": sum(pool.retries for pool in desk.http) + pbx.retries,
            "error_frames": dict(desk.error_frames),
            "closed_unexpectedly": dict(desk.closed_unexpectedly),
        }
    finally:
        await desk.close()
        pbx.close()
        await db.close()


def _server_pid(port: int) -> int:
    """The server process ``uvicorn_running`` started (this process's child serving ``port``)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"servicedesk.serve" in command and str(port).encode() in command:
                return int(child)
    raise SystemExit(f"no server process on port {port} among this process's children")


def _machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    memory = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(int(memory.split()[1]) / 1024**2, 1)}


def _child_step(env: dict[str, str], step: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([PYTHON, __file__, "--step", step, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-6000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@contextmanager
def celery_running(env: dict[str, str], concurrency: int, log_path: Path) -> Iterator[int]:
    """The product's Celery worker (as scripts/run and Compose start it), which folds the calls; its pid."""
    command = [PYTHON, "-m", "celery", "-A", "servicedesk", "worker", "-l", "info", "--concurrency", str(concurrency)]
    log = open(log_path, "wb")  # noqa: SIM115 - the child holds it
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        deadline = time.monotonic() + 90
        while b" ready." not in log_path.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Celery worker did not start: {log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield worker.pid
    finally:
        with suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def main_pop(args: argparse.Namespace, url: str, template: str, run_db: str, work: Path, env: dict[str, str]) -> None:
    import redis

    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        raise SystemExit("Set REDIS_URL to a Redis database of the benchmark's own: it is emptied (FLUSHDB).")
    env = {
        **env,
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "SD_PHONE_FOLD_IN_WORKER": "true" if args.fold == "worker" else "false",
    }
    env.pop("WEB_CONCURRENCY", None)
    random.seed(args.seed)
    report: dict[str, Any] = {
        "benchmark": "phone-pop",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {k: v for k, v in vars(args).items() if k not in ("clients",)},
        "machine": _machine(),
        "python": sys.version.split()[0],
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    log_copy = OUT / "phone-logs" / f"pop-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    try:
        started = time.perf_counter()
        run_url = databases_prepared(url, template, run_db, work, env)
        var_dir = work / "var"
        var_dir.mkdir()
        run_env = {**env, "DATABASE_URL": run_url, "SERVICEDESK_VAR_DIR": str(var_dir)}
        setup_path = work / "setup.json"
        report["setup"] = _child_step(run_env, "pop-setup", str(args.agents), str(args.callers), str(setup_path))
        setup = json.loads(setup_path.read_text())
        print(f"set-up: {report['setup']} in {time.perf_counter() - started:.1f} s", flush=True)
        redis.Redis.from_url(redis_url).flushdb()
        worker_log = work / "celery.log"
        try:
            with ExitStack() as stack:
                worker_pid = None
                if args.fold == "worker":
                    worker_pid = stack.enter_context(celery_running(run_env, args.celery_concurrency, worker_log))
                port = stack.enter_context(uvicorn_running(run_env, args.workers))
                pids = (_server_pid(port), worker_pid)
                report["result"] = asyncio.run(pop_measure(port, pids, setup, args, run_url, url))
        finally:
            report["logs"] = {}
            for name, log in (("server", var_dir / "uvicorn.log"), ("worker", worker_log)):
                if log.exists():
                    copy = log_copy.with_name(f"{log_copy.stem}-{name}.log")
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(log, copy)
                    text = log.read_text(errors="replace")
                    report["logs"][name] = {
                        "copy": str(copy.relative_to(ROOT)),
                        **{w: text.count(w) for w in ("WARNING", "ERROR", "Traceback") if w in text},
                    }
    finally:
        if not args.keep_databases:
            for name in (run_db, template):
                database_drop(url, name)
        with suppress(Exception):
            redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(work, ignore_errors=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    failures = [f for s in report["result"]["scenarios"].values() for f in _failures(s)]
    report["failures"] = failures
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"phone-pop-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nRing to pop, {args.agents} agents connected, {args.workers} server process(es):")
    for name, s in report["result"]["scenarios"].items():
        r, p = s["ring_to_frame_ms"], s["ring_to_pop_ms"]
        print(
            f"  {name:5}: frame p50 {r.get('p50')} p95 {r.get('p95')} p99 {r.get('p99')} max {r.get('max')} ms"
            f" ({s['frames_received']}/{s['frames_expected']} frames);"
            f" pop p50 {p.get('p50')} p95 {p.get('p95')} p99 {p.get('p99')} max {p.get('max')} ms"
            f" ({p.get('n', 0)} reads); CPU a call: server {s['cpu']['ms_per_call']['server']} ms,"
            f" worker {s['cpu']['ms_per_call']['worker']} ms, PostgreSQL {s['cpu']['ms_per_call']['postgres']} ms"
        )
    print(f"JSON: {path}")
    if failures:
        raise SystemExit("FAILED:\n  " + "\n  ".join(failures))


def databases_prepared(url: str, template: str, run_db: str, work: Path, env: dict[str, str]) -> str:
    """A migrated template database and a fresh copy of it for the run; the copy's URL."""
    template_url = database_fresh(url, template)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env={**env, "DATABASE_URL": template_url, "SERVICEDESK_VAR_DIR": str(work)},
        check=True,
        capture_output=True,
    )
    return str(database_fresh(url, run_db, template=template))


def _unfolded(url: str) -> int:
    """Events stored and not folded onto a call yet."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM phone_channel_callevent WHERE call_id IS NULL").fetchone()
    return int(row[0]) if row else 0


def _wait_folded(url: str, timeout: float) -> float | None:
    """Seconds until no event waits to be folded (polled every 0.1 s); None when ``timeout`` passes first."""
    started = time.perf_counter()
    while _unfolded(url):
        if time.perf_counter() - started > timeout:
            return None
        time.sleep(0.1)
    return time.perf_counter() - started


def main_events(
    args: argparse.Namespace, url: str, template: str, run_db: str, work: Path, env: dict[str, str]
) -> None:
    """Webhook events per second; with ``--fold worker`` (the product with Redis) also the worker's fold rate."""
    import redis

    redis_url = os.environ.get("REDIS_URL", "")
    if args.fold == "worker" and not redis_url:
        raise SystemExit("--fold worker: set REDIS_URL to a Redis database of the benchmark's own (FLUSHDB).")
    env = {
        **env,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "SD_PHONE_FOLD_IN_WORKER": "true" if args.fold == "worker" else "false",
    }
    if args.fold == "request":
        env.pop("REDIS_URL", None)
    env.pop("WEB_CONCURRENCY", None)
    admin_url = url
    try:
        run_url = databases_prepared(url, template, run_db, work, env)
        calls = events_for(args.calls, args.callers, args.seed)
        var_dir = work / "var"
        var_dir.mkdir()
        run_env = {**env, "DATABASE_URL": run_url, "SERVICEDESK_VAR_DIR": str(var_dir)}
        if redis_url and args.fold == "worker":
            redis.Redis.from_url(redis_url).flushdb()
        worker_log = work / "celery.log"
        fold: dict[str, Any] = {"where": args.fold}
        with ExitStack() as stack:
            worker_pid = None
            if args.fold == "worker" and not args.worker_after:
                worker_pid = stack.enter_context(celery_running(run_env, args.celery_concurrency, worker_log))
            port = stack.enter_context(uvicorn_running(run_env, args.workers))
            window = CpuWindow(_server_pid(port), worker_pid, admin_url, run_db)
            window.start()
            result = post_all(calls, port, args.clients)
            result["cpu"] = window.stop(result["events"])
            if args.fold == "worker":
                if args.worker_after:
                    fold["waiting_when_the_worker_started"] = _unfolded(run_url)
                    worker_pid = stack.enter_context(celery_running(run_env, args.celery_concurrency, worker_log))
                    drain = CpuWindow(_server_pid(port), worker_pid, admin_url, run_db)
                    drain.start()
                    seconds = _wait_folded(run_url, args.fold_timeout)
                    fold["cpu"] = drain.stop(args.calls)
                    fold["seconds"] = round(seconds, 2) if seconds is not None else None
                    if seconds:
                        fold["calls_per_second"] = round(args.calls / seconds, 1)
                        fold["events_per_second"] = round(result["events"] / seconds, 1)
                        fold["events_per_second_per_worker_process"] = round(
                            result["events"] / seconds / args.celery_concurrency, 1
                        )
                else:
                    seconds = _wait_folded(run_url, args.fold_timeout)
                    fold["seconds_after_the_last_answer"] = round(seconds, 2) if seconds is not None else None
                fold["celery_concurrency"] = args.celery_concurrency
        logs = {}
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        for name, log in (("server", var_dir / "uvicorn.log"), ("worker", worker_log)):
            if log.exists():
                copy = OUT / "phone-logs" / f"events-{stamp}-{name}.log"
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(log, copy)
                text = log.read_text(errors="replace")
                logs[name] = {"copy": str(copy.relative_to(ROOT)), **{w: text.count(w) for w in ("ERROR", "Traceback")}}
        result["logs"] = logs
        result["per_process"] = round(result["events_per_second"] / args.workers, 1)
        result["fold"] = fold
        result["database"] = counts(_with_database(url, run_db))
        report = {
            "benchmark": "phone",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "options": {
                k: getattr(args, k)
                for k in (
                    "calls",
                    "callers",
                    "clients",
                    "workers",
                    "seed",
                    "fold",
                    "worker_after",
                    "celery_concurrency",
                    "keep_databases",
                )
            },
            "machine": _machine(),
            "python": sys.version.split()[0],
            "load_average_after": round(os.getloadavg()[0], 2),
            "result": result,
        }
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"phone-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(report, indent=2))
        print(
            f"phone events: {result['events_per_second']} events/s with {args.workers} process(es)"
            f" ({result['per_process']} per process), {result['events']} in {result['seconds']} s;"
            f" statuses {result['statuses']}, answer p50 {result['answer_ms']['p50']} ms"
            f" p95 {result['answer_ms']['p95']} ms; CPU a event {result['cpu']['ms_per_call']};"
            f" fold {fold}; database {result['database']}"
        )
        print(f"JSON: {path}")
        expected = {"calls": args.calls, "events": result["events"], "sessions": args.calls, "answered": args.calls}
        wrong = {k: (result["database"][k], v) for k, v in expected.items() if result["database"][k] != v}
        if wrong or result["statuses"] != {200: result["events"]}:
            raise SystemExit(f"FAILED: database (held, expected) {wrong}; statuses {result['statuses']}")
    finally:
        if not args.keep_databases:
            for name in (run_db, template):
                database_drop(url, name)
        if redis_url and args.fold == "worker":
            with suppress(Exception):
                redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["--step"]:
        import django

        django.setup()
        steps = {"pop-setup": step_pop_setup}
        print(json.dumps(steps[sys.argv[2]](*sys.argv[3:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        nargs="?",
        choices=["events", "pop"],
        default="events",
        help="events: webhook events per second (the default); pop: ring to screen pop with agents connected.",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=None,
        help="Calls posted (events: 3 events each, default 3000; pop: per scenario, 200).",
    )
    parser.add_argument(
        "--callers", type=int, default=None, help="Distinct caller numbers (events: default 1000; pop: 50)."
    )
    parser.add_argument("--clients", type=int, default=8, help="events: connections posting at once (default 8).")
    parser.add_argument("--workers", type=int, default=1, help="Server processes (default 1).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fold",
        choices=["worker", "request"],
        default="worker",
        help="Who folds a call from its events: a Celery worker (default: the product's with REDIS_URL) or the request.",
    )
    parser.add_argument(
        "--celery-concurrency", type=int, default=2, help="fold worker: its processes (default 2, as scripts/run)."
    )
    parser.add_argument(
        "--worker-after",
        action="store_true",
        help="events, fold worker: start the worker once every event is in, to time the intake and the fold apart.",
    )
    parser.add_argument(
        "--fold-timeout", type=float, default=1800, help="events: seconds to wait for every event to be folded (1800)."
    )
    parser.add_argument("--keep-databases", action="store_true")
    pop = parser.add_argument_group("pop")
    pop.add_argument(
        "--agents", type=int, default=200, help="Agents of the line's queue, each with a desk socket (200)."
    )
    pop.add_argument("--interval", type=float, default=0.5, help="one: seconds between two calls' rings (0.5).")
    pop.add_argument(
        "--queue-interval",
        type=float,
        default=4.0,
        help="queue: seconds between two calls' rings (default 4: a ring to 200 desks costs over a second of CPU).",
    )
    pop.add_argument("--sample", type=int, default=10, help="queue: agents who read each call's pop (default 10).")
    pop.add_argument(
        "--scenarios",
        type=lambda v: [s.strip() for s in v.split(",") if s.strip()],
        default=list(SCENARIOS),
        help="Comma-separated: one (the event names one agent), queue (it names nobody). Default both.",
    )
    pop.add_argument("--warmup", type=int, default=5, help="Calls of each scenario before the measured ones (5).")
    pop.add_argument(
        "--ping-every", type=float, default=30, help="Each desk's ping and resume, as live.js (30; 0: none)."
    )
    pop.add_argument(
        "--pops-every", type=float, default=30, help="Each desk reads its pops again, as pop.js (30; 0: none)."
    )
    pop.add_argument(
        "--idle-seconds", type=float, default=20, help="CPU measured with the desks connected and no call (20; 0: not)."
    )
    pop.add_argument(
        "--call-timeout", type=float, default=30, help="Seconds a call waits for its frames and pops (default 30)."
    )
    args = parser.parse_args()
    if args.mode == "pop" and set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(set(args.scenarios) - set(SCENARIOS)))}")
    if args.calls is None:
        args.calls = 3000 if args.mode == "events" else 200
    if args.callers is None:
        args.callers = 1000 if args.mode == "events" else 50
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL database (the benchmark refuses SQLite).")
    base = url.rsplit("/", 1)[1]
    template, run_db = f"{base}_tpl", f"{base}_run"
    work = Path(tempfile.mkdtemp(prefix="sd-bench-phone-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "SD_PHONE_WEBHOOK_SECRET": SECRET,
        "SD_PHONE_REFUSED_PER_MINUTE": "1000000",
    }
    if args.mode == "pop":

        def stop(signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        # Ctrl-C and SIGTERM end the run through its clean-up (the server stopped, the databases dropped).
        signal.signal(signal.SIGTERM, stop)
        main_pop(args, url, template, run_db, work, env)
        return
    main_events(args, url, template, run_db, work, env)


if __name__ == "__main__":
    main()
