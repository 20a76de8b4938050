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
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))

from bench_intake import _with_database, database_drop, database_fresh, uvicorn_running  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="Calls posted (3 events each; default 3000).")
    parser.add_argument("--callers", type=int, default=1000, help="Distinct caller numbers (default 1000).")
    parser.add_argument("--clients", type=int, default=8, help="Connections posting at once (default 8).")
    parser.add_argument("--workers", type=int, default=1, help="Server processes (default 1).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-databases", action="store_true")
    args = parser.parse_args()
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
    try:
        template_url = database_fresh(url, template)
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input"],
            cwd=ROOT,
            env={**env, "DATABASE_URL": template_url, "SERVICEDESK_VAR_DIR": str(work)},
            check=True,
            capture_output=True,
        )
        run_url = database_fresh(url, run_db, template=template)
        calls = events_for(args.calls, args.callers, args.seed)
        var_dir = work / "var"
        var_dir.mkdir()
        run_env = {**env, "DATABASE_URL": run_url, "SERVICEDESK_VAR_DIR": str(var_dir)}
        with uvicorn_running(run_env, args.workers) as port:
            result = post_all(calls, port, args.clients)
        result["per_process"] = round(result["events_per_second"] / args.workers, 1)
        result["database"] = counts(_with_database(url, run_db))
        report = {
            "benchmark": "phone",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "options": vars(args),
            "cpus": os.cpu_count(),
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
            f" p95 {result['answer_ms']['p95']} ms; database {result['database']}"
        )
        print(f"JSON: {path}")
    finally:
        if not args.keep_databases:
            for name in (run_db, template):
                database_drop(url, name)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
