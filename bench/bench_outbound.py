"""Outbound benchmark: queued acknowledgements sent by SMTP, with and without connection reuse.

Creates ``--messages`` tickets through the intake, each with its
acknowledgement queued, then sends them all through the delivery service
(``message_deliver``, the claim, the deliverer, the record) to a local SMTP
server (aiosmtpd, in a process of its own), once reusing one connection
(``SD_SMTP_CONNECTION_IDLE_SECONDS=30``) and once with a connection per
message (``=0``), over plain SMTP and over STARTTLS with a login. With
``REDIS_URL`` set, the same through a real Celery worker (prefork,
``--concurrency`` processes, 2 as ``scripts/run`` starts). Reported: messages/s, the time spent in the SMTP
conversation, and the connections the server counted. See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_bench_outbound \
        .venv/bin/python bench/bench_outbound.py --flush
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
DOMAIN = "bench-outbound.example"
LOGIN, PASSWORD = "bench", "bench-secret"
MODES = {"reuse": "30", "per_message": "0"}  # SD_SMTP_CONNECTION_IDLE_SECONDS


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- The SMTP server (a process of its own, so it does not share the sender's CPU) ------


def serve(port: int, tls_dir: str) -> None:
    """Accept every mail; count connections and messages; print them as JSON on SIGTERM."""
    import logging
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, AuthResult

    # aiosmtpd warns about its own legacy login field at every login.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    counts = {"connections": 0, "messages": 0}

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            counts["messages"] += 1
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=(data.login, data.password) == (LOGIN.encode(), PASSWORD.encode()))

    kwargs: dict[str, Any] = {"enable_SMTPUTF8": True}
    if tls_dir:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(f"{tls_dir}/cert.pem", f"{tls_dir}/key.pem")
        kwargs.update(tls_context=context, require_starttls=True, auth_required=True, authenticator=authenticate)

    class Counting(Controller):
        def factory(self) -> SMTP:
            counts["connections"] += 1
            return SMTP(self.handler, **self.SMTP_kwargs)

    controller = Counting(Handler(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    counts["connections"] = 0  # the one aiosmtpd opened to itself while starting
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        time.sleep(0.05)
    controller.stop()
    print(json.dumps(counts), flush=True)


class Server:
    def __init__(self, tls_dir: str) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [PYTHON, __file__, "--serve", str(self.port), "--tls-dir", tls_dir],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit("The SMTP server did not start.")

    def stop(self) -> dict[str, int]:
        self.process.send_signal(signal.SIGTERM)
        out, _err = self.process.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])


# --- Steps in child processes -----------------------------------------------------------


def prepare(messages: int) -> dict[str, Any]:
    """``messages`` tickets through the intake, each with its acknowledgement queued."""
    from servicedesk.celery import app
    from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
    from servicedesk.tickets.models import Queue
    from servicedesk.tickets.services.intake import inbound_message_receive

    app.conf.broker_url = "memory://"  # the tasks the intake enqueues go nowhere: the benchmark sends
    Queue.objects.get_or_create(slug="support", defaults={"name": "Support"})
    started = time.perf_counter()
    for n in range(messages):
        inbound_message_receive(
            inbound=InboundMessage(
                channel="email",
                external_id=f"bench-{uuid.uuid4().hex}@{DOMAIN}",
                sender=SenderIdentity("email", f"customer{n}@{DOMAIN}", f"Customer {n}"),
                subject=f"Question {n}",
                text="Hello, my printer does not print.",
            )
        )
    return {"tickets": messages, "seconds": round(time.perf_counter() - started, 2)}


def _acks() -> Any:
    from servicedesk.tickets.models import Message

    return Message.objects.filter(purpose="acknowledgement", ticket__customer__identities__value__endswith=DOMAIN)


def _requeue() -> list[int]:
    from servicedesk.tickets.models import DeliveryStatus

    _acks().update(
        delivery_status=DeliveryStatus.QUEUED, delivery_attempts=0, delivery_error="", delivery_claimed_at=None
    )
    return list(_acks().order_by("pk").values_list("pk", flat=True))


def deliver() -> dict[str, Any]:
    """Every acknowledgement once through ``message_deliver``, one after another, as one worker process does."""
    import channels_app.email.outbound as email_outbound
    from channels_app.email.smtp import connections_close
    from servicedesk.tickets.services.delivery import message_deliver

    ids = _requeue()
    smtp_seconds = [0.0]
    send = email_outbound.connection_send

    def timed(mail: Any) -> None:
        started = time.perf_counter()
        try:
            send(mail)
        finally:
            smtp_seconds[0] += time.perf_counter() - started

    email_outbound.connection_send = timed  # type: ignore[assignment]
    outcomes: dict[str, int] = {}
    started = time.perf_counter()
    for pk in ids:
        outcome = str(message_deliver(message_id=pk))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    seconds = time.perf_counter() - started
    connections_close()
    return {
        "messages": len(ids),
        "outcomes": outcomes,
        "seconds": round(seconds, 3),
        "messages_per_second": round(len(ids) / seconds, 1),
        "smtp_ms_per_message": round(1000 * smtp_seconds[0] / len(ids), 3),
        "other_ms_per_message": round(1000 * (seconds - smtp_seconds[0]) / len(ids), 3),
    }


def enqueue(queue: str, timeout: float) -> dict[str, Any]:
    """Enqueue every acknowledgement's delivery task on ``queue``; wait until all are sent."""
    from servicedesk.celery import app
    from servicedesk.tickets.models import DeliveryStatus
    from servicedesk.tickets.tasks import message_deliver_task

    ids = _requeue()
    app.conf.task_default_queue = queue
    started = time.perf_counter()
    for pk in ids:
        message_deliver_task.delay(pk)
    enqueued = time.perf_counter() - started
    while True:
        pending = _acks().exclude(delivery_status=DeliveryStatus.SENT).count()
        if not pending or time.perf_counter() - started > timeout:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    return {
        "messages": len(ids),
        "not_sent": pending,
        "enqueue_seconds": round(enqueued, 3),
        "seconds": round(seconds, 3),
        "messages_per_second": round((len(ids) - pending) / seconds, 1),
    }


# --- The parent ---------------------------------------------------------------------------


def _child(*args: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([PYTHON, __file__, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"Step {args} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _smtp_env(env: dict[str, str], server: Server, idle: str, tls_dir: str) -> dict[str, str]:
    smtp = {
        **env,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "EMAIL_TIMEOUT": "10",
        "EMAIL_USE_TLS": "false",
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "SD_SMTP_CONNECTION_IDLE_SECONDS": idle,
    }
    if tls_dir:
        smtp.update(
            EMAIL_USE_TLS="true",
            EMAIL_HOST_USER=LOGIN,
            EMAIL_HOST_PASSWORD=PASSWORD,
            SSL_CERT_FILE=f"{tls_dir}/cert.pem",  # the client trusts the server's self-signed certificate
        )
    return smtp


def _certificate(folder: Path) -> str:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
            "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )  # fmt: skip
    return str(folder)


def _celery_run(env: dict[str, str], concurrency: int, timeout: float) -> dict[str, Any]:
    queue = f"bench-outbound-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(
            [
                PYTHON, "-m", "celery", "-A", "servicedesk", "worker", "--pool", "prefork",
                "--concurrency", str(concurrency), "-Q", queue, "-n", f"{queue}@%h", "-l", "info",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                log.seek(0)
                if b" ready." in log.read():
                    break
                if worker.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"The Celery worker did not start:\n{log.read()[-4000:].decode(errors='replace')}")
                time.sleep(0.1)
            return _child("--step", "enqueue", "--queue", queue, "--timeout", str(timeout), env=env)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            import redis

            client = redis.Redis.from_url(env["REDIS_URL"])
            leftovers = list(client.scan_iter(match=f"*{queue}*"))
            if leftovers:
                client.delete(*leftovers)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="Acknowledgements to send (default 1000).")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="Celery worker processes, as scripts/run starts (0: no Celery runs)."
    )
    parser.add_argument("--no-tls", action="store_true", help="Plain SMTP only, without the STARTTLS runs.")
    parser.add_argument(
        "--repeat", type=int, default=3, help="Runs of each configuration (default 3); medians reported."
    )
    parser.add_argument("--flush", action="store_true", help="Empty the database first (all its data is deleted).")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tls-dir", default="", help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=600, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        serve(args.serve, args.tls_dir)
        return
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database; the benchmark refuses SQLite.")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_LEVEL": "WARNING",
    }
    if args.step:
        os.environ.update(env)
        _setup_django()
        if args.step == "prepare":
            print(json.dumps(prepare(args.messages)))
        elif args.step == "deliver":
            print(json.dumps(deliver()))
        elif args.step == "enqueue":
            print(json.dumps(enqueue(args.queue, args.timeout)))
        return

    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)
    if args.flush:
        subprocess.run([PYTHON, "manage.py", "flush", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)
    report: dict[str, Any] = {
        "database": url.rsplit("@", 1)[-1],
        "messages": args.messages,
        "cpus": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "prepare": _child("--step", "prepare", "--messages", str(args.messages), env=env),
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="sd-bench-outbound-") as folder:
        transports = {"plain": ""} if args.no_tls else {"plain": "", "starttls_login": _certificate(Path(folder))}
        # Each configuration --repeat times, the modes taking turns, so a busy
        # moment of the machine does not fall on one mode only.
        for repeat in range(args.repeat):
            for transport, tls_dir in transports.items():
                for mode, idle in MODES.items():
                    server = Server(tls_dir)
                    run = _child("--step", "deliver", env=_smtp_env(env, server, idle, tls_dir))
                    run["server"] = server.stop()
                    runs.setdefault(f"one_process_{transport}_{mode}", []).append(run)
                    print(f"{repeat + 1}: one process, {transport}, {mode}: {json.dumps(run)}", flush=True)
                if os.environ.get("REDIS_URL") and args.concurrency:
                    for mode, idle in MODES.items():
                        server = Server(tls_dir)
                        run = _celery_run(_smtp_env(env, server, idle, tls_dir), args.concurrency, timeout=600)
                        run["server"] = server.stop()
                        name = f"celery_{args.concurrency}_{transport}_{mode}"
                        runs.setdefault(name, []).append(run)
                        print(
                            f"{repeat + 1}: celery x{args.concurrency}, {transport}, {mode}: {json.dumps(run)}",
                            flush=True,
                        )
    report["runs"] = runs
    report["median_messages_per_second"] = {
        name: statistics.median(run["messages_per_second"] for run in measured) for name, measured in runs.items()
    }
    report["median_smtp_ms_per_message"] = {
        name: statistics.median(run["smtp_ms_per_message"] for run in measured)
        for name, measured in runs.items()
        if name.startswith("one_process")
    }
    report["server_connections"] = {
        name: sorted({run["server"]["connections"] for run in measured}) for name, measured in runs.items()
    }
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = OUT / f"outbound-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    for key in ("median_messages_per_second", "median_smtp_ms_per_message", "server_connections"):
        print(f"{key}: {json.dumps(report[key], indent=2)}")
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
