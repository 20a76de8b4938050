"""Live chat benchmark: idle visitor sockets per server process, and a chat line's latency to the agent.

Real WebSockets against the project's own web server (``python -m
servicedesk.serve``, one uvicorn process, ``DEBUG`` off), the Redis channel
layer (``REDIS_URL``) and PostgreSQL (``DATABASE_URL``: a fresh database copied
from a migrated template, as bench_intake.py does). Phases:

1. ``idle``: ``--idle`` visitor sockets (``/ws/chat/?token=…`` from an allowed
   Origin) opened and held; the server process's memory per connection
   (``VmRSS`` before and after, over the connections), the pings' answer time
   and the server's CPU while they are held.
2. ``latency``: ``--chats`` active chats, each visitor sending a message every
   ``--interval`` seconds (jittered start); the time from the send to the
   agent's ``/ws/desk/`` socket receiving ``{"type": "chat", "event":
   "changed"}`` for that chat, and to the visitor's own echo (the line back
   with its ``client_id``), over ``--duration`` seconds after ``--warmup``.
3. ``echo``: the same clients, rate and count against bench/echo_asgi.py (the
   same hops through the same layer, no database), served by the same command:
   the floor. Reported: p95(chat) / p95(echo).

The conversations are made in the database by a set-up step (the tickets
through the intake, the rest in bulk), not through the start endpoint. See
bench/README.md ("bench_chat.py").

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_benchchat REDIS_URL=redis://127.0.0.1:6379/10 \\
        .venv/bin/python bench/bench_chat.py
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import random
import resource
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))

# The database helpers are bench_intake's (this folder is on the path when a benchmark runs).
from bench_intake import _admin, _with_database, database_drop, database_fresh  # noqa: E402

CHAT_APP = "servicedesk.asgi:application"
ECHO_APP = "bench.echo_asgi:application"
# The widget's allowed origin (set up below) and the visitor sockets' Origin header.
SITE = "http://shop.example"
QUEUE_SLUG = "bench-chat"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The echo server takes any address; the same snippet runs the desk's server with another application.
SERVE_WITH_APP = "import sys, servicedesk.serve as s; s.APPLICATION = sys.argv[1]; s.main(sys.argv[2:])"


# --- Databases (as bench_intake.py) -------------------------------------------------------------------------


def database_stats(url: str, name: str) -> dict[str, int]:
    """The database's activity counters (pg_stat_database): transactions and rows, for deltas."""
    with _admin(url) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted"
            " FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    keys = ("commits", "rollbacks", "rows_returned", "rows_fetched", "rows_inserted", "rows_updated", "rows_deleted")
    return dict(zip(keys, (int(v) for v in row), strict=True)) if row else {}


# --- The server process ---------------------------------------------------------------------------------------


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_tree_cpu_seconds(pid: int) -> float:
    """``proc_cpu_seconds`` of the process and of its children (the worker processes of a server
    started with ``--workers`` more than 1)."""
    total = proc_cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            with suppress(OSError):
                total += proc_tree_cpu_seconds(int(child))
    return total


def proc_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One web server process (``servicedesk.serve``, one worker), its log, and a check that it lives."""

    def __init__(self, bench: Bench, app: str, name: str, *, workers: int = 1) -> None:
        self.bench, self.app, self.name = bench, app, name
        self.port = _free_port()
        self.log_path = bench.work / f"server-{name}.log"
        # The chat: the product's command, as scripts/run, the image and Compose start it.
        python = [PYTHON, "-m", "servicedesk.serve"] if app == CHAT_APP else [PYTHON, "-c", SERVE_WITH_APP, app]
        command = [
            *python,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--no-access-log",
        ]
        # ``exec``: the process the benchmark measures is the server itself, with the raised limit.
        self.command = f"ulimit -n {bench.args.nofile} && exec {shlex.join(command)}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.bench.redis_flush()
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child holds it
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", self.command],
            cwd=ROOT,
            env=self.bench.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.bench.servers.append(self)
        deadline = time.monotonic() + 90
        while True:
            self.check()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server {self.name} did not answer /healthz within 90 s:\n{self.log_tail()}")
            time.sleep(0.2)
        limit = Path(f"/proc/{self.pid}/limits").read_text()
        self.nofile = next((line.split()[3] for line in limit.splitlines() if line.startswith("Max open files")), "?")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def check(self) -> None:
        """Fail loudly when the server died."""
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self.process = None
            raise SystemExit(f"server {self.name} died (exit {code}); its log ends:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def errors_logged(self) -> dict[str, int]:
        """Log lines by level word (WARNING, ERROR, Traceback), to show a run that went wrong."""
        counts: Counter[str] = Counter()
        for line in self.log_tail(10_000_000).splitlines():
            for word in ("WARNING", "ERROR", "CRITICAL", "Traceback"):
                if word in line:
                    counts[word] += 1
        return dict(counts)


# --- The benchmark's own state and clean-up ------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = os.environ["DATABASE_URL"]
        self.base = urlsplit(self.url).path.lstrip("/")
        self.template = f"{self.base}_tpl"
        self.run_db = f"{self.base}_run"
        self.run_url = _with_database(self.url, self.run_db)
        self.redis_url = os.environ["REDIS_URL"]
        self.work = Path(tempfile.mkdtemp(prefix="sd-bench-chat-"))
        self.var_dir = self.work / "var"
        self.var_dir.mkdir()
        self.servers: list[Server] = []
        self.clients: list[Any] = []
        self.databases: list[str] = []

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.run_url,
            "REDIS_URL": self.redis_url,
            "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
            "DEBUG": "false",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "LOG_LEVEL": "WARNING",
            "SERVICEDESK_VAR_DIR": str(self.var_dir),
            "PYTHONUNBUFFERED": "1",
            # Not used (the chats are made in the database), raised in case a run starts chats over HTTP.
            "SD_API_THROTTLE_CHAT_START": "1000000/minute",
        }
        env.pop("WEB_CONCURRENCY", None)
        return env

    def redis_flush(self) -> None:
        """Empty the benchmark's Redis database: the channel layer's groups and queues of earlier runs."""
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()

    def prepare(self) -> None:
        started = time.perf_counter()
        database_fresh(self.url, self.template)
        self.databases.append(self.template)
        env = self.env() | {"DATABASE_URL": _with_database(self.url, self.template)}
        done = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"migrate failed:\n{done.stderr[-4000:]}")
        database_fresh(self.url, self.run_db, template=self.template)
        self.databases.append(self.run_db)
        print(f"database {self.run_db} (copy of migrated {self.template}) in {time.perf_counter() - started:.1f} s")

    def cleanup(self) -> None:
        for client in self.clients:
            if client.is_alive():
                client.terminate()
            client.join(5)
            if client.is_alive():
                client.kill()
        for server in self.servers:
            server.stop()
        if not self.args.keep_databases:
            for name in reversed(self.databases):
                try:
                    database_drop(self.url, name)
                except Exception as exc:
                    print(f"could not drop {name}: {exc}", file=sys.stderr)
        with suppress(Exception):
            self.redis_flush()
        logs = OUT / "chat-logs"
        if any(self.work.glob("server-*.log")):
            logs.mkdir(parents=True, exist_ok=True)
            for path in self.work.glob("server-*.log"):
                shutil.copy(path, logs / path.name)
        shutil.rmtree(self.work, ignore_errors=True)


# --- Set-up in a child process (Django) -----------------------------------------------------------------------


def step_setup(count: str, agents: str, out: str) -> dict[str, Any]:
    """The widget, ``agents`` agents of its queue with a session each, and ``count`` active chats.

    Each chat's ticket and customer come through the intake, as a chat's first
    message does (``inbound_message_receive``, channel chat, not routed nor
    acknowledged); its session (answered), conversation (active, its agent
    assigned, a token hash) and first two lines (the visitor's message, the
    agent's "joined") are then written with ``bulk_create``, which is what
    ``chat_start`` and ``chat_accept`` leave behind, without their pushes and
    routing. Chat ``i`` belongs to agent ``i % agents``. The tokens and session
    cookies are written to ``out``.
    """
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import transaction
    from django.utils import timezone

    from channels_app.chat import services
    from channels_app.chat.models import ChatConversation, ChatLine, ChatStatus, ChatWidget, LineAuthor
    from servicedesk.accounts.models import User
    from servicedesk.routing.models import CHAT_CAPACITY_MAX, AgentProfile, Availability
    from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
    from servicedesk.tickets.models import Queue, Session, SessionChannel, Ticket
    from servicedesk.tickets.services.intake import inbound_message_receive

    total, agent_count = int(count), int(agents)
    now = timezone.now()
    queue, _ = Queue.objects.get_or_create(slug=QUEUE_SLUG, defaults={"name": "Bench chat"})
    widget = ChatWidget.objects.create(key="bench", name="Bench chat", queue=queue, allowed_origins=SITE)
    role = Group.objects.get_or_create(name="agent")[0]
    users = []
    for n in range(agent_count):
        user = User.objects.create_user(username=f"bench-agent-{n}", email=f"agent{n}@bench.example")
        user.groups.add(role)
        queue.members.add(user)
        AgentProfile.objects.update_or_create(
            user=user,
            defaults={"availability": Availability.ONLINE, "seen_at": now, "chat_capacity": CHAT_CAPACITY_MAX},
        )
        users.append(user)
    backend = settings.AUTHENTICATION_BACKENDS[0]
    agents_out = []
    for user in users:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = backend
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        agents_out.append({"id": user.pk, "cookie": f"{settings.SESSION_COOKIE_NAME}={store.session_key}"})

    started = time.perf_counter()
    made = []
    for i in range(total):
        visitor_id = "v:" + secrets.token_hex(16)
        result = inbound_message_receive(
            inbound=InboundMessage(
                channel="chat",
                external_id=f"chat:bench:{uuid.uuid4()}",
                sender=SenderIdentity(kind="chat", value=visitor_id, name=f"Visitor {i}"),
                subject=f"Bench chat {i}",
                text=f"Hello, this is bench visitor {i}.",
                queue=QUEUE_SLUG,
                language="en",
                received_at=now,
                acknowledge=False,
                route=False,
                metadata={"chat": "live"},
            )
        )
        made.append((visitor_id, result))
    intake_seconds = time.perf_counter() - started
    started = time.perf_counter()
    chats_out = []
    with transaction.atomic():
        sessions = Session.objects.bulk_create(
            Session(
                channel=SessionChannel.CHAT,
                customer=result.customer,
                ticket=result.ticket,
                agent=users[i % agent_count],
                requested_at=now,
                answered_at=now,
            )
            for i, (_visitor, result) in enumerate(made)
        )
        tokens = [secrets.token_urlsafe(32) for _ in made]
        conversations = ChatConversation.objects.bulk_create(
            ChatConversation(
                widget=widget,
                ticket=result.ticket,
                customer=result.customer,
                session=sessions[i],
                queue=queue,
                status=ChatStatus.ACTIVE,
                token_hash=services.token_hash(tokens[i]),
                token_expires_at=now + timedelta(days=services.TOKEN_DAYS),
                visitor_id=visitor_id,
                claimed_name=f"Visitor {i}",
                language="en",
                origin=SITE,
                last_seq=2,
                agent=users[i % agent_count],
                requested_at=now,
                visitor_seen_at=now,
                last_activity_at=now,
            )
            for i, (visitor_id, result) in enumerate(made)
        )
        lines = []
        for i, ((_visitor, result), conversation) in enumerate(zip(made, conversations, strict=True)):
            agent = users[i % agent_count]
            lines.append(
                ChatLine(
                    conversation=conversation,
                    seq=1,
                    client_id=uuid.uuid4(),
                    author=LineAuthor.VISITOR,
                    message=result.message,
                    at=now,
                )
            )
            lines.append(
                ChatLine(
                    conversation=conversation,
                    seq=2,
                    author=LineAuthor.SYSTEM,
                    notice="joined",
                    notice_args={"name": str(agent)},
                    at=now,
                )
            )
            chats_out.append({"conversation": conversation.pk, "token": tokens[i], "agent": i % agent_count, "seq": 2})
        ChatLine.objects.bulk_create(lines, batch_size=2000)
        for n, user in enumerate(users):
            Ticket.objects.filter(
                pk__in=[r.ticket.pk for i, (_v, r) in enumerate(made) if i % agent_count == n]
            ).update(assignee=user)
    bulk_seconds = time.perf_counter() - started
    Path(out).write_text(json.dumps({"agents": agents_out, "chats": chats_out}))
    return {
        "chats": total,
        "agents": agent_count,
        "intake_seconds": round(intake_seconds, 1),
        "bulk_seconds": round(bulk_seconds, 1),
    }


def _child_step(bench: Bench, step: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, __file__, "--step", step, *args], cwd=ROOT, env=bench.env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-6000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- Clients (asyncio + websockets, in processes of their own) ------------------------------------------------


def _raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _percentiles(values: list[float], scale: float = 1000.0) -> dict[str, Any]:
    """p50/p95/p99/max in milliseconds (values in seconds)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * scale, 2)

    return {
        "n": len(ordered),
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1] * scale, 2),
        "mean": round(statistics.fmean(ordered) * scale, 2),
    }


def _close_reason(exc: BaseException) -> str:
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    if isinstance(exc, InvalidStatus):
        return f"http {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else None
        return f"closed {code}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} errno {exc.errno} ({os.strerror(exc.errno)})"
    return f"{type(exc).__name__}: {str(exc)[:80]}"


class LoopLag:
    """How late the client's event loop wakes up: proof the client side is not the bottleneck."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            planned = time.monotonic() + 0.05
            await asyncio.sleep(0.05)
            self.lags.append(max(0.0, time.monotonic() - planned))

    def stop(self) -> dict[str, Any]:
        if self.task is not None:
            self.task.cancel()
        return _percentiles(self.lags)


class ClientSide:
    """One client process's sockets: visitors and agents, what they sent and received, and when."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.port = spec["port"]
        self.compression = None if spec["compression"] == "none" else "deflate"
        self.visitors: dict[int, Any] = {}  # conversation -> socket
        self.agents: dict[int, Any] = {}  # agent index -> socket
        self.failures: Counter[str] = Counter()
        self.closed_unexpectedly: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.pings: dict[int, float] = {}
        self.pong_times: list[float] = []
        self.sent: dict[str, tuple[int, float]] = {}  # client_id -> (conversation, sent at)
        self.echoed: dict[str, float] = {}
        self.agent_frames: list[tuple[int, float]] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.closing = False
        self.connect_times: list[float] = []
        self.lost: list[tuple[int, float, str]] = []

    async def _connect(self, uri: str, origin: str, headers: dict[str, str] | None = None) -> Any:
        from websockets.asyncio.client import connect

        return await connect(
            uri,
            origin=origin,  # type: ignore[arg-type]
            additional_headers=headers,
            compression=self.compression,
            open_timeout=self.spec["open_timeout"],
            # As a browser: no pings of its own (the server pings every 20 s).
            ping_interval=None,
            close_timeout=5,
            max_queue=64,
            user_agent_header=None,
        )

    async def visitor_open(self, chat: dict[str, Any], limit: asyncio.Semaphore) -> None:
        conversation = chat["conversation"]
        uri = f"ws://127.0.0.1:{self.port}/ws/chat/?token={chat['token']}&c={conversation}&a={chat['agent_id']}"
        async with limit:
            started = time.monotonic()
            try:
                ws = await self._connect(uri, SITE)
                first = json.loads(await asyncio.wait_for(ws.recv(), self.spec["open_timeout"]))
            except Exception as exc:
                self.failures[_close_reason(exc)] += 1
                return
            if first.get("type") != "status":
                self.failures[f"first frame {first.get('type')}"] += 1
                await ws.close()
                return
            self.connect_times.append(time.monotonic() - started)
        self.visitors[conversation] = ws
        self.tasks.append(asyncio.get_running_loop().create_task(self._visitor_read(conversation, ws)))
        if self.spec.get("resume"):
            # As the widget does on every (re)connect: resume from the highest seq it holds.
            await ws.send(json.dumps({"type": "resume", "after": chat["seq"]}))

    async def agent_open(self, index: int, agent: dict[str, Any]) -> None:
        uri = f"ws://127.0.0.1:{self.port}/ws/desk/?a={agent['id']}"
        ws = await self._connect(uri, f"http://127.0.0.1:{self.port}", {"Cookie": agent["cookie"]})
        hello = json.loads(await asyncio.wait_for(ws.recv(), self.spec["open_timeout"]))
        if hello.get("type") != "hello":
            raise SystemExit(f"agent socket {index}: first frame {hello}")
        self.agents[index] = ws
        self.tasks.append(asyncio.get_running_loop().create_task(self._agent_read(ws)))

    async def _visitor_read(self, conversation: int, ws: Any) -> None:
        try:
            async for raw in ws:
                now = time.monotonic()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message":
                    client_id = frame.get("client_id")
                    if client_id in self.sent and client_id not in self.echoed:
                        self.echoed[client_id] = now
                elif kind == "pong":
                    sent = self.pings.pop(conversation, None)
                    if sent is not None:
                        self.pong_times.append(now - sent)
                elif kind == "error":
                    self.errors[str(frame.get("code"))] += 1
        except Exception as exc:
            if not self.closing:
                self._lost(conversation, _close_reason(exc))
            return
        if not self.closing:
            self._lost(conversation, f"closed {ws.close_code}")

    def _lost(self, conversation: int, reason: str) -> None:
        self.closed_unexpectedly[reason] += 1
        if len(self.lost) < 50:
            self.lost.append((conversation, round(time.monotonic(), 3), reason))

    async def _agent_read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") == "chat" and frame.get("event") == "changed":
                    self.agent_frames.append((int(frame["conversation"]), time.monotonic()))
        except Exception as exc:
            if not self.closing:
                self.closed_unexpectedly["agent " + _close_reason(exc)] += 1
            return
        if not self.closing:
            self.closed_unexpectedly[f"agent closed {ws.close_code}"] += 1

    async def pinging(self, every: float, until: float) -> None:
        """Each visitor pings every ``every`` seconds (the widget's 20 s), at a random phase."""

        async def one(conversation: int, ws: Any) -> None:
            await asyncio.sleep(random.uniform(0, every))
            while time.monotonic() < until and not self.closing:
                self.pings[conversation] = time.monotonic()
                try:
                    await ws.send('{"type": "ping"}')
                except Exception:
                    return
                await asyncio.sleep(every)

        await asyncio.gather(*(one(c, ws) for c, ws in list(self.visitors.items())))

    async def chatting(self, t0: float, interval: float, last_send: float) -> None:
        async def one(conversation: int, ws: Any) -> None:
            at = t0 + random.uniform(0, interval)
            n = 0
            while at < last_send and not self.closing:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                client_id = str(uuid.uuid4())
                n += 1
                frame = json.dumps({"type": "message", "client_id": client_id, "text": f"Message {n}, still here"})
                self.sent[client_id] = (conversation, time.monotonic())
                try:
                    await ws.send(frame)
                except Exception:
                    return
                at += interval

        await asyncio.gather(*(one(c, ws) for c, ws in list(self.visitors.items())))

    async def close_all(self) -> float:
        self.closing = True
        started = time.monotonic()
        sockets = list(self.visitors.values()) + list(self.agents.values())
        for start in range(0, len(sockets), 500):
            await asyncio.gather(*(ws.close() for ws in sockets[start : start + 500]), return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        return time.monotonic() - started


async def _client_run(conn: Any, spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()

    async def command() -> dict[str, Any]:
        return dict(await loop.run_in_executor(None, conn.recv))

    side = ClientSide(spec)
    lag = LoopLag()
    lag.start()
    cpu_start = time.process_time()
    limit = asyncio.Semaphore(spec["connect_concurrency"])
    started = time.monotonic()
    for index, agent in spec["agents"]:
        await side.agent_open(index, agent)
    await asyncio.gather(*(side.visitor_open(chat, limit) for chat in spec["chats"]))
    conn.send(
        {
            "opened": len(side.visitors),
            "agents": len(side.agents),
            "failures": dict(side.failures),
            "seconds": round(time.monotonic() - started, 2),
            "connect": _percentiles(side.connect_times),
        }
    )
    go = await command()
    if go["cmd"] == "hold":
        pinger = loop.create_task(side.pinging(spec["ping_every"], float("inf"))) if spec["ping_every"] else None
        await command()  # "close"
        if pinger is not None:
            pinger.cancel()
    else:  # "chat"
        t0, interval = go["t0"], spec["interval"]
        last_send = t0 + spec["warmup"] + spec["duration"]
        pinger = loop.create_task(side.pinging(spec["ping_every"], last_send)) if spec["ping_every"] else None
        await side.chatting(t0, interval, last_send)
        await asyncio.sleep(max(0.0, last_send + spec["drain"] - time.monotonic()))
        if pinger is not None:
            pinger.cancel()
    closed_unexpectedly = dict(side.closed_unexpectedly)
    close_seconds = await side.close_all()
    conn.send(
        {
            "closed_unexpectedly": closed_unexpectedly,
            "lost": side.lost,
            "errors": dict(side.errors),
            "pong": _percentiles(side.pong_times),
            "sent": [[c, t, cid] for cid, (c, t) in side.sent.items()],
            "echoed": side.echoed,
            "agent_frames": side.agent_frames,
            "loop_lag": lag.stop(),
            "cpu_seconds": round(time.process_time() - cpu_start, 2),
            "close_seconds": round(close_seconds, 2),
        }
    )


def client_main(conn: Any, spec: dict[str, Any]) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the clients itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _raise_nofile(spec["nofile"])
    try:
        asyncio.run(_client_run(conn, spec))
    except BaseException as exc:
        with suppress(Exception):
            conn.send({"crashed": f"{type(exc).__name__}: {exc}"})
        raise


class Clients:
    """``--clients`` processes sharing the sockets of one phase, driven through pipes."""

    def __init__(self, bench: Bench, server: Server, chats: list[dict[str, Any]], agents: list[Any], **spec: Any):
        self.bench, self.server = bench, server
        n = max(1, min(bench.args.clients, len(chats) or 1))
        context = multiprocessing.get_context("fork")
        self.pipes = []
        self.processes = []
        for k in range(n):
            parent, child = context.Pipe()
            part = {
                **spec,
                "port": server.port,
                "nofile": bench.args.nofile,
                "open_timeout": bench.args.open_timeout,
                "connect_concurrency": bench.args.connect_concurrency,
                "compression": bench.args.compression,
                "chats": chats[k::n],
                "agents": [(i, a) for i, a in enumerate(agents) if i % n == k],
            }
            process = context.Process(target=client_main, args=(child, part), daemon=True, name=f"client-{k}")
            process.start()
            child.close()
            bench.clients.append(process)
            self.pipes.append(parent)
            self.processes.append(process)

    def gather(self, timeout: float) -> list[dict[str, Any]]:
        """One answer from every client process; fails loudly when the server or a client dies."""
        answers: list[dict[str, Any] | None] = [None] * len(self.pipes)
        deadline = time.monotonic() + timeout
        while any(a is None for a in answers):
            self.server.check()
            for k, pipe in enumerate(self.pipes):
                if answers[k] is None and pipe.poll(0.2):
                    answer = pipe.recv()
                    if "crashed" in answer:
                        raise SystemExit(f"client process {k} crashed: {answer['crashed']}")
                    answers[k] = answer
                elif answers[k] is None and not self.processes[k].is_alive():
                    raise SystemExit(f"client process {k} died (exit {self.processes[k].exitcode})")
            if time.monotonic() > deadline:
                raise SystemExit(f"clients did not answer within {timeout:.0f} s")
        return [a for a in answers if a is not None]

    def send(self, message: dict[str, Any]) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    def join(self) -> None:
        for process in self.processes:
            process.join(10)


def _sum_counters(answers: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for answer in answers:
        total.update(answer.get(key) or {})
    return dict(total)


def _merge_percentiles(answers: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The worst client's figures (the per-process percentiles cannot be merged exactly)."""
    parts = [a[key] for a in answers if a.get(key, {}).get("n")]
    if not parts:
        return {"n": 0}
    worst = max(parts, key=lambda p: p["p95"])
    return {**worst, "n": sum(p["n"] for p in parts)}


# --- Phases ----------------------------------------------------------------------------------------------------


def _sleep_watching(server: Server, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        server.check()
        time.sleep(min(0.5, left))


def _warm(server: Server, chats: list[dict[str, Any]], agents: list[dict[str, Any]], bench: Bench) -> None:
    """Open and close a few sockets first: the imports, pools and layer connections made on first use."""
    clients = Clients(bench, server, chats[:20], agents[:1], interval=0, warmup=0, duration=0, drain=0, ping_every=0)
    clients.gather(120)
    clients.send({"cmd": "hold"})
    clients.send({"cmd": "close"})
    clients.gather(120)
    clients.join()


def run_idle(bench: Bench, app: str, chats: list[dict[str, Any]], agents: list[dict[str, Any]]) -> dict[str, Any]:
    args = bench.args
    name = "chat" if app == CHAT_APP else "echo"
    server = Server(bench, app, f"idle-{name}")
    server.start()
    try:
        _warm(server, chats, agents, bench)
        time.sleep(2)
        rss_before = proc_rss_kib(server.pid)
        wanted = chats[: args.idle]
        clients = Clients(bench, server, wanted, [], resume=False, ping_every=args.idle_ping)
        opened = clients.gather(args.open_timeout + args.idle * 0.2)
        reached = sum(a["opened"] for a in opened)
        failures = _sum_counters(opened, "failures")
        open_seconds = max(a["seconds"] for a in opened)
        clients.send({"cmd": "hold"})
        hold_started = time.monotonic()
        _sleep_watching(server, 3)
        rss_open = proc_rss_kib(server.pid)
        cpu_before = proc_cpu_seconds(server.pid)
        _sleep_watching(server, args.hold)
        cpu_hold = proc_cpu_seconds(server.pid) - cpu_before
        rss_held = proc_rss_kib(server.pid)
        threads = proc_threads(server.pid)
        clients.send({"cmd": "close"})
        closed = clients.gather(300)
        clients.join()
        _sleep_watching(server, 3)
        rss_after_close = proc_rss_kib(server.pid)
    finally:
        server.stop()
    per_connection = (rss_held - rss_before) / reached if reached else None
    result = {
        "app": app,
        "wanted": len(wanted),
        "reached": reached,
        "failures": failures,
        "open_seconds": open_seconds,
        "opens_per_second": round(reached / open_seconds, 1) if open_seconds else None,
        "connect_ms": _merge_percentiles(opened, "connect"),
        "server_nofile": server.nofile,
        "server_threads": threads,
        "rss_kib": {"before": rss_before, "open": rss_open, "held": rss_held, "after_close": rss_after_close},
        "kib_per_connection": round(per_connection, 1) if per_connection is not None else None,
        "hold_seconds": args.hold,
        "ping_every": args.idle_ping,
        "server_cpu_percent_while_held": round(100 * cpu_hold / args.hold, 1),
        "pong_ms": _merge_percentiles(closed, "pong"),
        "closed_unexpectedly": _sum_counters(closed, "closed_unexpectedly"),
        # (conversation, seconds after the hold began, reason).
        "lost_sockets": [[c, round(t - hold_started, 2), r] for a in closed for c, t, r in a["lost"]],
        "error_frames": _sum_counters(closed, "errors"),
        "client_loop_lag_ms": _merge_percentiles(closed, "loop_lag"),
        "client_cpu_seconds": sum(a["cpu_seconds"] for a in closed),
        "server_log": server.errors_logged(),
    }
    print(
        f"  idle {name}: {reached}/{len(wanted)} open in {open_seconds} s"
        f" ({result['opens_per_second']}/s), failures {failures or 'none'};"
        f" RSS {rss_before} -> {rss_held} KiB = {result['kib_per_connection']} KiB/connection;"
        f" server CPU {result['server_cpu_percent_while_held']} % while held (pings every {args.idle_ping} s,"
        f" pong p95 {result['pong_ms'].get('p95')} ms)",
        flush=True,
    )
    return result


def _match(sent: list[list[Any]], frames: list[tuple[int, float]], window: tuple[float, float]) -> dict[str, Any]:
    """Each send paired with the first agent frame for its chat at or after it (in order, each frame once)."""
    by_chat: dict[int, list[float]] = defaultdict(list)
    for conversation, at in frames:
        by_chat[conversation].append(at)
    for times in by_chat.values():
        times.sort()
    sends: dict[int, list[float]] = defaultdict(list)
    for conversation, at, _cid in sent:
        sends[conversation].append(at)
    latencies, missing = [], 0
    for conversation, times in sends.items():
        received = by_chat.get(conversation, [])
        k = 0
        for at in sorted(times):
            while k < len(received) and received[k] < at:
                k += 1
            measured = window[0] <= at < window[1]
            if k < len(received):
                if measured:
                    latencies.append(received[k] - at)
                k += 1
            elif measured:
                missing += 1
    return {**_percentiles(latencies), "missing": missing}


def run_latency(bench: Bench, app: str, chats: list[dict[str, Any]], agents: list[dict[str, Any]]) -> dict[str, Any]:
    args = bench.args
    name = "chat" if app == CHAT_APP else "echo"
    server = Server(bench, app, f"latency-{name}", workers=bench.args.workers)
    server.start()
    try:
        _warm(server, chats, agents, bench)
        used = chats[: args.chats]
        agents_used = sorted({c["agent"] for c in used})
        agent_list = [agents[i] if i in agents_used else None for i in range(len(agents))]
        spec = {
            "interval": args.interval,
            "warmup": args.warmup,
            "duration": args.duration,
            "drain": args.drain,
            "ping_every": args.ping_every,
            "resume": True,
        }
        clients = Clients(bench, server, used, [a for a in agent_list if a is not None], **spec)
        opened = clients.gather(args.open_timeout + len(used) * 0.2)
        reached = sum(a["opened"] for a in opened)
        if reached < len(used):
            raise SystemExit(f"latency {name}: only {reached} of {len(used)} visitor sockets opened: {opened}")
        _sleep_watching(server, 2)
        t0 = time.monotonic() + 1.0
        window = (t0 + args.warmup, t0 + args.warmup + args.duration)
        clients.send({"cmd": "chat", "t0": t0})
        _sleep_watching(server, max(0.0, window[0] - time.monotonic()))
        cpu_before, db_before = proc_tree_cpu_seconds(server.pid), database_stats(bench.url, bench.run_db)
        _sleep_watching(server, max(0.0, window[1] - time.monotonic()))
        cpu_window = proc_tree_cpu_seconds(server.pid) - cpu_before
        db_after = database_stats(bench.url, bench.run_db)
        rss = proc_rss_kib(server.pid)
        answers = clients.gather(args.drain + 300)
        clients.join()
    finally:
        server.stop()
    sent = [s for a in answers for s in a["sent"]]
    echoed: dict[str, float] = {}
    for a in answers:
        echoed.update(a["echoed"])
    frames = [(c, t) for a in answers for c, t in a["agent_frames"]]
    in_window = [s for s in sent if window[0] <= s[1] < window[1]]
    echo_latencies = [echoed[cid] - at for _c, at, cid in in_window if cid in echoed]
    messages = len(in_window)
    db = {k: db_after[k] - db_before.get(k, 0) for k in db_after}
    result = {
        "app": app,
        "chats": len(used),
        "agents": len(agents_used),
        "interval_seconds": args.interval,
        "warmup_seconds": args.warmup,
        "window_seconds": args.duration,
        "ping_every": args.ping_every,
        "messages_in_window": messages,
        "messages_per_second": round(messages / args.duration, 1),
        "agent_ms": _match(sent, frames, window),
        "echo_ms": {**_percentiles(echo_latencies), "missing": messages - len(echo_latencies)},
        "server_cpu_percent": round(100 * cpu_window / args.duration, 1),
        "server_cpu_ms_per_message": round(1000 * cpu_window / messages, 2) if messages else None,
        "server_rss_kib": rss,
        "database_per_message": {k: round(v / messages, 1) for k, v in db.items()}
        if messages and app == CHAT_APP
        else {},
        "closed_unexpectedly": _sum_counters(answers, "closed_unexpectedly"),
        # (conversation, seconds after the first send could go, reason): when and which, to match the server log.
        "lost_sockets": [[c, round(t - t0, 2), r] for a in answers for c, t, r in a["lost"]],
        "error_frames": _sum_counters(answers, "errors"),
        "pong_ms": _merge_percentiles(answers, "pong"),
        "client_loop_lag_ms": _merge_percentiles(answers, "loop_lag"),
        "client_cpu_seconds": sum(a["cpu_seconds"] for a in answers),
        "server_log": server.errors_logged(),
    }
    agent, echo = result["agent_ms"], result["echo_ms"]
    print(
        f"  latency {name}: {messages} messages in {args.duration} s ({result['messages_per_second']}/s);"
        f" to agent p50 {agent.get('p50')} p95 {agent.get('p95')} p99 {agent.get('p99')} ms (missing {agent['missing']});"
        f" echo p50 {echo.get('p50')} p95 {echo.get('p95')} p99 {echo.get('p99')} ms;"
        f" server CPU {result['server_cpu_percent']} % ({result['server_cpu_ms_per_message']} ms/message)",
        flush=True,
    )
    return result


# --- Main ------------------------------------------------------------------------------------------------------


def _summary(report: dict[str, Any]) -> None:
    print("\nSummary")
    idle = report.get("idle", {})
    for name, r in idle.items():
        print(
            f"  idle {name:5}: {r['reached']:>6} of {r['wanted']} sockets on one process,"
            f" {r['kib_per_connection']} KiB each (goal < 50), failures {r['failures'] or 'none'}"
        )
    latency = report.get("latency", {})
    for name, r in latency.items():
        a, e = r["agent_ms"], r["echo_ms"]
        print(
            f"  {name:5} to agent: p50 {a.get('p50')} p95 {a.get('p95')} p99 {a.get('p99')} ms;"
            f" visitor echo: p50 {e.get('p50')} p95 {e.get('p95')} p99 {e.get('p99')} ms"
            f" ({r['chats']} chats, {r['messages_in_window']} messages)"
        )
    if report.get("ratio_p95_chat_over_echo") is not None:
        print(
            f"  p95 chat / p95 echo (to agent): {report['ratio_p95_chat_over_echo']}"
            f" (goals: chat p95 < 100 ms, ratio <= 3)"
        )
    print(f"  load average: before {report['load_average_before']}, after {report.get('load_average_after')}")


def main() -> None:
    if sys.argv[1:2] == ["--step"]:
        import django

        django.setup()
        steps = {"setup": step_setup}
        print(json.dumps(steps[sys.argv[2]](*sys.argv[3:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "phases", nargs="?", default="idle,latency,echo", help="Comma-separated: idle, latency, echo (default all)."
    )
    parser.add_argument("--idle", type=int, default=5000, help="Idle visitor sockets to open (default 5000).")
    parser.add_argument("--idle-echo", action="store_true", help="Also open the idle sockets on the echo server.")
    parser.add_argument("--hold", type=float, default=30, help="Seconds the idle sockets are held (default 30).")
    parser.add_argument(
        "--idle-ping", type=float, default=20, help="Idle visitors' ping every N s, as the widget (0: none)."
    )
    parser.add_argument("--chats", type=int, default=1000, help="Concurrent chats in the latency run (default 1000).")
    parser.add_argument("--agents", type=int, default=10, help="Agents holding the chats (default 10).")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Server worker processes in the latency runs, chat and echo alike (default 1; CPU summed).",
    )
    parser.add_argument("--interval", type=float, default=10, help="Seconds between a visitor's messages (10).")
    parser.add_argument("--warmup", type=float, default=20, help="Seconds of chatting before the window (20).")
    parser.add_argument("--duration", type=float, default=60, help="Measured window in seconds (default 60).")
    parser.add_argument("--drain", type=float, default=10, help="Seconds waited for late frames after the window.")
    parser.add_argument("--ping-every", type=float, default=20, help="Visitors' pings while chatting (0: none).")
    parser.add_argument("--clients", type=int, default=2, help="Client processes (default 2).")
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=25,
        help="Handshakes in flight per client process (default 25; see bench/README.md on bursts).",
    )
    parser.add_argument("--open-timeout", type=float, default=60)
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="permessage-deflate offered by the clients, as browsers do (default), or not.",
    )
    parser.add_argument("--nofile", type=int, default=20000, help="Open-files limit of the server and the clients.")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep-databases", action="store_true")
    args = parser.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - {"idle", "latency", "echo"}
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server and a database name prefix (sd_benchchat).")
    if not os.environ.get("REDIS_URL"):
        raise SystemExit("Set REDIS_URL to a Redis database of the benchmark's own: it is emptied (FLUSHDB).")
    random.seed(args.seed)
    args.nofile = _raise_nofile(args.nofile)

    bench = Bench(args)

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    # Also when started in the background by a shell, which would have SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    report: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "phases": phases,
        "options": {k: v for k, v in vars(args).items() if k != "phases"},
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "memory_available_mib": _mem_available_mib(),
        "server_command": "",
    }
    try:
        bench.prepare()
        needed = max(args.idle if "idle" in phases else 0, args.chats if {"latency", "echo"} & set(phases) else 0, 20)
        with _timed("set-up"):
            report["setup"] = _child_step(bench, "setup", str(needed), str(args.agents), str(bench.work / "setup.json"))
        print(f"set-up: {report['setup']}", flush=True)
        data = json.loads((bench.work / "setup.json").read_text())
        agents = data["agents"]
        chats = [{**c, "agent_id": agents[c["agent"]]["id"]} for c in data["chats"]]
        report["server_command"] = Server(bench, CHAT_APP, "probe").command
        report["idle"] = {}
        report["latency"] = {}
        if "idle" in phases:
            report["idle"]["chat"] = run_idle(bench, CHAT_APP, chats, agents)
            if args.idle_echo:
                report["idle"]["echo"] = run_idle(bench, ECHO_APP, chats, agents)
        if "latency" in phases:
            report["latency"]["chat"] = run_latency(bench, CHAT_APP, chats, agents)
        if "echo" in phases:
            report["latency"]["echo"] = run_latency(bench, ECHO_APP, chats, agents)
        if "chat" in report["latency"] and "echo" in report["latency"]:
            chat_p95 = report["latency"]["chat"]["agent_ms"].get("p95")
            echo_p95 = report["latency"]["echo"]["agent_ms"].get("p95")
            report["ratio_p95_chat_over_echo"] = round(chat_p95 / echo_p95, 2) if chat_p95 and echo_p95 else None
            chat_p95 = report["latency"]["chat"]["echo_ms"].get("p95")
            echo_p95 = report["latency"]["echo"]["echo_ms"].get("p95")
            report["ratio_p95_echo_frame_chat_over_echo"] = (
                round(chat_p95 / echo_p95, 2) if chat_p95 and echo_p95 else None
            )
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        bench.cleanup()
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    _summary(report)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"chat-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nJSON: {path}")


def _mem_available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


@contextmanager
def _timed(what: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"{what}: {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
