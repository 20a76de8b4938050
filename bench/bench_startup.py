"""Start-up of the per-message mail command, ``manage.py ingest_email``, as a mail server's pipe runs it.

Each mode runs the command ``--runs`` times (a fresh process each time, the
files warm in the page cache after a first unmeasured run) and reports the
wall time and the CPU time (user + system) of the process: median, minimum
and 90th percentile. See bench/README.md.

- ``python``: ``python -c pass``, the floor.
- ``full-stored``: ``manage.py ingest_email`` with a new mail on standard
  input each run (stored, acknowledgement queued to the broker).
- ``full-duplicate``: the same mail each run (found a duplicate).
- ``thin-stub``: ``manage.py ingest_email --url`` posting to a stub in this
  script that answers ``stored`` at once: the command's own start-up and run.
- ``thin``: ``manage.py ingest_email --url`` with a new mail each run, posted
  to a desk this script starts (uvicorn, as in docker-compose.yml) on a free
  port; the desk's time to store the mail is part of the figure.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/bench_startup.py --runs 15
    # the same on another checkout (an older commit), the modes it has:
    ... bench/bench_startup.py --root /tmp/old-checkout --modes python,full-stored,full-duplicate
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MODES = ("python", "full-stored", "full-duplicate", "thin-stub", "thin")
SECRET = secrets.token_hex(16)


def mail() -> bytes:
    n = uuid.uuid4().hex
    return (
        f"From: Bench Sender <bench-{n[:8]}@example.com>\r\nTo: support@servicedesk.example\r\n"
        f"Subject: Start-up {n}\r\nMessage-ID: <{n}@bench.example>\r\n"
        "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHello, this is mail {n}.\r\n"
    ).encode()


def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "SD_INBOUND_EMAIL_SECRET": SECRET,
        # The desk started here takes every post of the run.
        "SD_API_THROTTLE_INBOUND_EMAIL": "100000/minute",
    }


def run_once(command: list[str], *, cwd: Path, stdin: bytes) -> tuple[float, float, str]:
    """One process: its wall time, its CPU time (user + system) and its first output line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, env=child_env(), check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return wall, cpu, done.stdout.decode(errors="replace").strip()


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "min": round(ordered[0], 3),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 3),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def desk_start(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "servicedesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
        ],
        cwd=root,
        env=child_env(),
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("The desk did not start (uvicorn servicedesk.asgi:application).") from None
            time.sleep(0.2)
    return process, f"http://127.0.0.1:{port}/api/v1/inbound/email/"


class StubDesk(http.server.BaseHTTPRequestHandler):
    """Answers every post as the desk answers a stored mail, at once."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"outcome": "stored", "reference": "SD-1", "reason": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def stub_start() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StubDesk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/api/v1/inbound/email/"


def measure(mode: str, *, root: Path, runs: int, url: str | None) -> dict[str, Any]:
    python = [sys.executable]
    manage = [*python, "manage.py", "ingest_email"]
    same = mail()
    if mode == "python":
        command, payload = [*python, "-c", "pass"], lambda: b""
    elif mode == "full-stored":
        command, payload = manage, mail
    elif mode == "full-duplicate":
        command, payload = manage, lambda: same
    else:
        assert url is not None
        command, payload = [*manage, "--url", url], mail
    run_once(command, cwd=root, stdin=payload())  # warm the page cache; not counted
    walls, cpus, lines = [], [], []
    for _ in range(runs):
        wall, cpu, line = run_once(command, cwd=root, stdin=payload())
        walls.append(wall)
        cpus.append(cpu)
        lines.append(line)
    return {
        "command": " ".join(["python" if part == sys.executable else part for part in command]),
        "runs": runs,
        "wall_s": summary(walls),
        "cpu_s": summary(cpus),
        "last_output": lines[-1] if lines else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--root", type=Path, default=ROOT, help="Checkout whose manage.py is measured.")
    parser.add_argument("--modes", default=",".join(MODES), help=f"Comma-separated, of {', '.join(MODES)}.")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (migrated) of its own.")
    modes = [mode for mode in args.modes.split(",") if mode]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"Unknown modes: {', '.join(sorted(unknown))}")
    root = args.root.resolve()
    desk, url = desk_start(root) if "thin" in modes else (None, None)
    stub, stub_url = stub_start()
    results: dict[str, dict[str, Any]] = {}
    try:
        for mode in modes:
            results[mode] = measure(mode, root=root, runs=args.runs, url=stub_url if mode == "thin-stub" else url)
            wall, cpu = results[mode]["wall_s"], results[mode]["cpu_s"]
            print(
                f"{mode:15} wall median {wall['median']:.3f} s  min {wall['min']:.3f} s  p90 {wall['p90']:.3f} s"
                f"   cpu median {cpu['median']:.3f} s  min {cpu['min']:.3f} s",
                flush=True,
            )
    finally:
        stub.shutdown()
        if desk is not None:
            desk.terminate()
            desk.wait(timeout=30)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {"root": str(root), "python": sys.version.split()[0], "cpus": os.cpu_count(), "results": results}
    path = OUT / f"startup-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"Written to {path}")


if __name__ == "__main__":
    main()
