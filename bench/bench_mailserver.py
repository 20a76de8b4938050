"""A mail server delivering to the desk over LMTP at full speed, on PostgreSQL.

Starts ``manage.py lmtp_server`` (``servicedesk.settings.local``, the broker
at REDIS_URL) for each number of processes and of database worker threads
per process, and delivers ``--mails`` generated mails through it over
``--connections`` LMTP sessions at once (kept open, as Postfix keeps its LMTP
connections), each mail to two recipients. Reported per run: messages/s, the
latency of each mail (data sent to the last reply read: p50, p95, max), the
CPU time per mail of the listener and of the PostgreSQL processes serving it,
and a check that every recipient got 250 and the database holds one row per
mail. See bench/README.md.

    createdb -h 127.0.0.1 -U postgres sd_bench_mail
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_bench_mail REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/bench_mailserver.py --flush
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
RECIPIENTS = ("support@servicedesk.example", "billing@servicedesk.example")
SENDERS = 500
PARAGRAPH = (
    "Hello, since this morning the invoice page shows an error when I try to download last month's "
    "invoice as PDF. I tried two browsers and cleared the cache. Could you look into it? Thank you.\r\n"
)


def mail(run: str, number: int) -> bytes:
    """Mail ``number`` of a run: a new request from one of SENDERS customers; every fifth also in HTML."""
    sender = f"customer{number % SENDERS}@bench-mail.example"
    head = (
        f"From: Customer {number % SENDERS} <{sender}>\r\nTo: Support <support@servicedesk.example>\r\n"
        f"Subject: Invoice download fails ({run} #{number})\r\nMessage-ID: <{run}.{number}@bench-mail.example>\r\n"
        "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    )
    text = PARAGRAPH * 8
    if number % 5:
        return (head + f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}").encode()
    html = "<html><body>\r\n" + "".join(f"<p>{line}</p>\r\n" for line in text.splitlines()) + "</body></html>\r\n"
    return (
        head + 'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}"
        f"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}--b--\r\n"
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listener_start(*, processes: int, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    command = [
        "manage.py",
        "lmtp_server",
        "--port",
        str(port),
        "--processes",
        str(processes),
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(
        [PYTHON, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "LMTP listener on" not in line:
        process.kill()
        raise SystemExit(f"The listener did not start: {line!r}")
    return process, port


def listener_stop(process: subprocess.Popen[str]) -> float:
    started = time.perf_counter()
    process.terminate()
    process.wait(timeout=120)
    if process.returncode != 0:
        raise SystemExit(f"The listener exited {process.returncode} on SIGTERM.")
    return time.perf_counter() - started


def process_cpu(pids: list[int]) -> dict[int, float]:
    """CPU time (user + system) used so far by each of ``pids`` still alive."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return used


def listener_pids(pid: int) -> list[int]:
    """The listener's process and its children (``--processes``)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *map(int, children)]


def database_pids(url: str) -> list[int]:
    """The PostgreSQL server processes of the connections open to the database (the listener's, when it keeps them)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before[pid] for pid in before if pid in after)


def session_deliver(port: int, mails: list[bytes], latencies: list[float], replies: list[int]) -> None:
    """One LMTP session delivering ``mails`` one after the other."""
    client = smtplib.LMTP("127.0.0.1", port, local_hostname="mx.bench.example")
    try:
        client.ehlo()
        for raw in mails:
            client.mail("bounces@bench-mail.example")
            for recipient in RECIPIENTS:
                client.rcpt(recipient)
            started = time.perf_counter()
            codes = [client.data(raw)[0]] + [client.getreply()[0] for _ in RECIPIENTS[1:]]
            latencies.append(time.perf_counter() - started)
            replies.extend(codes)
    finally:
        client.quit()


def lmtp_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM email_channel_inboundemail WHERE source = 'lmtp'").fetchone()
    assert row is not None
    return int(row[0])


def run(*, mails: int, connections: int, processes: int, workers: int, env: dict[str, str], url: str) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    tag = uuid.uuid4().hex[:10]
    batch = [mail(tag, n) for n in range(mails)]
    shares = [batch[n::connections] for n in range(connections)]
    before = lmtp_rows(url)
    process, port = listener_start(processes=processes, workers=workers, env=env)
    latencies: list[float] = []
    replies: list[int] = []
    warm = [mail(f"{tag}w{n}", 0) for n in range(processes * 2)]
    try:
        # Mails outside the figures, a session each, so that every process is
        # warm (imports, connections) as on a running server.
        for raw in warm:
            session_deliver(port, [raw], [], [])
        threads = [threading.Thread(target=session_deliver, args=(port, share, latencies, replies)) for share in shares]
        listener = listener_pids(process.pid)
        database = database_pids(url)
        listener_before, database_before = process_cpu(listener), process_cpu(database)
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        listener_cpu = cpu_used(listener_before, process_cpu(listener))
        # Connections opened during the run (a thread's first mail) count whole.
        database_after = process_cpu(sorted(set(database) | set(database_pids(url))))
        database_cpu = cpu_used(database_before, database_after) + sum(
            used for pid, used in database_after.items() if pid not in database_before
        )
    finally:
        stop_seconds = listener_stop(process)
    stored = lmtp_rows(url) - before - len(warm)
    ordered = sorted(latencies)
    result: dict[str, Any] = {
        "mails": mails,
        "connections": connections,
        "processes": processes,
        "workers": workers,
        "seconds": round(elapsed, 2),
        "messages_per_s": round(mails / elapsed, 1),
        # The listener's own CPU per mail (its processes, not PostgreSQL's): what
        # bounds it on a machine with CPUs to spare.
        "listener_cpu_ms_per_message": round(listener_cpu / mails * 1000, 1),
        # The PostgreSQL processes serving the listener's kept connections
        # (none to measure with --conn-max-age 0: a connection per mail).
        "database_cpu_ms_per_message": round(database_cpu / mails * 1000, 1) if database else None,
        "latency_ms": {
            "p50": round(statistics.median(ordered) * 1000, 1),
            "p95": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 1),
            "max": round(ordered[-1] * 1000, 1),
        },
        "replies_250": replies.count(250),
        "replies_other": len(replies) - replies.count(250),
        "rows_stored": stored,
        "stop_seconds": round(stop_seconds, 2),
        # Other work on the machine shares its CPUs: the 1-minute load before and after.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if result["replies_other"] or stored != mails:
        raise SystemExit(f"Not every mail was stored once: {json.dumps(result)}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=500, help="Mails per run (default 500).")
    parser.add_argument("--connections", default="1,4", help="LMTP sessions at once, per run (default 1,4).")
    parser.add_argument("--processes", default="1,2", help="Listener processes, per run (default 1,2).")
    parser.add_argument("--workers", default="1,2", help="Database threads per process, per run (default 1,2).")
    parser.add_argument("--conn-max-age", type=int, default=0, help="CONN_MAX_AGE of the listener (default 0).")
    parser.add_argument("--flush", action="store_true", help="Empty the database first (all its data is deleted).")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database; the benchmark refuses SQLite.")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_LEVEL": "WARNING",
        "CONN_MAX_AGE": str(args.conn_max_age),
    }
    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)
    if args.flush:
        subprocess.run([PYTHON, "manage.py", "flush", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)

    results = []
    for processes in (int(value) for value in args.processes.split(",")):
        for workers in (int(value) for value in args.workers.split(",")):
            for connections in (int(value) for value in args.connections.split(",")):
                result = run(
                    mails=args.mails, connections=connections, processes=processes, workers=workers, env=env, url=url
                )
                results.append(result)
                latency = result["latency_ms"]
                print(
                    f"processes {processes}  workers {workers}  connections {connections}:"
                    f"  {result['messages_per_s']:7.1f} messages/s"
                    f"  CPU/message: listener {result['listener_cpu_ms_per_message']} ms,"
                    f" database {result['database_cpu_ms_per_message']} ms"
                    f"  latency p50 {latency['p50']} ms  p95 {latency['p95']} ms  max {latency['max']} ms"
                    f"  (load {result['load_average'][0]}-{result['load_average'][1]})",
                    flush=True,
                )
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "cpus": os.cpu_count(),
        "conn_max_age": args.conn_max_age,
        "runs": results,
    }
    path = OUT / f"mailserver-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"Written to {path}")


if __name__ == "__main__":
    main()
