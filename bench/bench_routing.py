"""Routing benchmark: 10,000 arriving tickets across 200 agents, on PostgreSQL.

Measures how fast tickets are assigned as they arrive (through the real
``ticket_create`` path, which routes inside its transaction), how fast a
backlog of waiting tickets is drained, the fairness of the split, and that no
agent ever holds more open tickets than their capacity. See bench/README.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_bench_routing \
        .venv/bin/python bench/bench_routing.py --flush --workers 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
# slug, mode, match_language, match_channel, required skill (other:<value>) or None
QUEUES = (
    ("r-support", "round_robin", True, False, None),
    ("r-billing", "least_loaded", False, False, None),
    ("r-technical", "round_robin", False, False, "technical"),
    ("r-chat", "round_robin", False, True, None),
)
TIERS = ("enterprise", "premium", "standard", None)
PRIORITIES = ("low", "normal", "normal", "normal", "high", "urgent")
CUSTOMERS = 500


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicedesk.settings.local")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _ticket_shape(number: int) -> dict:
    """Queue, language, channel and priority of arriving ticket ``number`` (deterministic)."""
    queue = QUEUES[number % len(QUEUES)][0]
    return {
        "queue": queue,
        "language": "zh" if queue == "r-support" and number % 10 == 0 else "en",
        "channel": "chat" if queue == "r-chat" else ("email", "web")[number % 2],
        "priority": PRIORITIES[number % len(PRIORITIES)],
        "customer": f"bench-c{number % CUSTOMERS}",
    }


def prepare(*, agents: int, capacity: int) -> None:
    """Queues (manual until routing starts), agents with skills and profiles, customers."""
    from django.contrib.auth.models import Group
    from django.db import transaction

    from servicedesk.accounts.models import User
    from servicedesk.routing.models import AgentProfile
    from servicedesk.routing.services import skill_get_or_create
    from servicedesk.tickets.models import Customer, Organization, Queue

    with transaction.atomic():
        group, _created = Group.objects.get_or_create(name="agent")
        queues = [Queue.objects.get_or_create(slug=slug, defaults={"name": slug})[0] for slug, *_rest in QUEUES]
        skills = {
            "en": skill_get_or_create(kind="language", value="en"),
            "zh": skill_get_or_create(kind="language", value="zh"),
            "chat": skill_get_or_create(kind="channel", value="chat"),
            "technical": skill_get_or_create(kind="other", value="technical"),
        }
        users = User.objects.bulk_create(
            [User(username=f"bench-agent{n}", display_name=f"Agent {n}", is_active=True) for n in range(agents)]
        )
        User.groups.through.objects.bulk_create([User.groups.through(user_id=u.pk, group_id=group.pk) for u in users])
        Queue.members.through.objects.bulk_create(
            [Queue.members.through(queue_id=queues[n % len(queues)].pk, user_id=u.pk) for n, u in enumerate(users)]
        )
        profiles = AgentProfile.objects.bulk_create(
            [AgentProfile(user=u, capacity=capacity, availability="online") for u in users]
        )
        links = []
        for n, profile in enumerate(profiles):
            held = ["en", "technical" if n % len(QUEUES) == 2 else None, "chat" if n % len(QUEUES) == 3 else None]
            if n % 5 == 0:  # one agent in five (of every queue) also speaks Chinese
                held.append("zh")
            links += [
                AgentProfile.skills.through(agentprofile_id=profile.pk, skill_id=skills[name].pk)
                for name in held
                if name
            ]
        AgentProfile.skills.through.objects.bulk_create(links)
        orgs = {
            tier: Organization.objects.get_or_create(name=f"Bench {tier}", defaults={"tier": tier})[0]
            for tier in TIERS
            if tier
        }
        Customer.objects.bulk_create(
            [
                Customer(
                    name=f"Customer {c}",
                    external_id=f"bench-c{c}",
                    created_at=datetime.now(UTC),
                    organization=orgs.get(TIERS[c % len(TIERS)]) if TIERS[c % len(TIERS)] else None,
                )
                for c in range(CUSTOMERS)
            ]
        )


def routing_start() -> None:
    from servicedesk.routing.services import queue_routing_set, skill_get_or_create
    from servicedesk.tickets.models import Queue

    for slug, mode, match_language, match_channel, required in QUEUES:
        queue_routing_set(
            queue=Queue.objects.get(slug=slug),
            mode=mode,
            match_language=match_language,
            match_channel=match_channel,
            required_skills=[skill_get_or_create(kind="other", value=required)] if required else [],
        )


def arrivals(first: int, stop: int, start_at: float) -> dict:
    """Create tickets [first, stop) through ticket_create, timing the routing step apart."""
    from servicedesk.routing import services
    from servicedesk.tickets.events import Actor
    from servicedesk.tickets.models import Customer, Queue
    from servicedesk.tickets.services.tickets import ticket_create

    queues = {q.slug: q for q in Queue.objects.filter(slug__in=[q[0] for q in QUEUES])}
    customers = {c.external_id: c for c in Customer.objects.filter(external_id__startswith="bench-c")}
    routed = 0.0
    original = services.ticket_route

    def timed_route(**kwargs):  # type: ignore[no-untyped-def]
        nonlocal routed
        started = time.perf_counter()
        try:
            return original(**kwargs)
        finally:
            routed += time.perf_counter() - started

    services.ticket_route = timed_route  # type: ignore[assignment]
    while time.time() < start_at:
        time.sleep(0.005)
    started = time.perf_counter()
    for number in range(first, stop):
        shape = _ticket_shape(number)
        customer = customers[shape["customer"]]
        ticket_create(
            customer=customer,
            subject=f"Arrival {number}",
            channel=shape["channel"],
            actor=Actor.of_customer(customer, source="intake"),
            queue=queues[shape["queue"]],
            priority=shape["priority"],
            language=shape["language"],
        )
    return {"tickets": stop - first, "seconds": time.perf_counter() - started, "routing_seconds": routed}


def _workers(total: int, workers: int, env: dict[str, str]) -> dict:
    start_at = time.time() + 3.0  # every worker has imported Django by then
    step = -(-total // workers)
    children = [
        subprocess.Popen(
            [PYTHON, __file__, "--worker", str(w * step), str(min(total, (w + 1) * step)), str(start_at)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
        if w * step < total
    ]
    results = []
    for child in children:
        stdout, stderr = child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"worker failed:\n{stderr[-4000:]}")
        results.append(json.loads(stdout))
    wall = max(r["seconds"] for r in results)
    return {
        "workers": len(results),
        "tickets": total,
        "wall_seconds": round(wall, 2),
        "tickets_per_second": round(total / wall, 1),
        "routing_ms_per_ticket": round(1000 * sum(r["routing_seconds"] for r in results) / total, 2),
        "create_ms_per_ticket": round(1000 * sum(r["seconds"] for r in results) / total, 2),
    }


def fairness(capacity: int) -> dict:
    """Per queue: assignments per agent (spread, stdev); per class of agents with the same
    queue and skills the spread too; the largest open load against the capacity."""
    from django.db.models import Count

    from servicedesk.routing.models import AgentProfile, Assignment
    from servicedesk.routing.selectors import agent_loads
    from servicedesk.tickets.models import Queue, Ticket

    counts = dict(Assignment.objects.values("agent_id").annotate(n=Count("pk")).values_list("agent_id", "n"))
    member_of = dict(Queue.members.through.objects.values_list("user_id", "queue__slug"))
    skills: dict[int, list[str]] = defaultdict(list)
    for user_id, kind, value in AgentProfile.skills.through.objects.values_list(
        "agentprofile__user_id", "skill__kind", "skill__value"
    ):
        skills[user_id].append(f"{kind}:{value}")
    per_queue: dict[str, list[int]] = defaultdict(list)
    per_class: dict[str, list[int]] = defaultdict(list)
    for user_id, slug in member_of.items():
        if not slug.startswith("r-"):
            continue
        per_queue[slug].append(counts.get(user_id, 0))
        per_class[f"{slug} {'+'.join(sorted(skills[user_id]))}"].append(counts.get(user_id, 0))
    loads = agent_loads(member_of)
    capacities = dict(AgentProfile.objects.values_list("user_id", "capacity"))
    over = [u for u, n in loads.items() if n > capacities.get(u, capacity)]

    def spread(values: list[int]) -> dict:
        return {
            "agents": len(values),
            "assigned": sum(values),
            "min": min(values),
            "max": max(values),
            "spread": max(values) - min(values),
            "stdev": round(statistics.pstdev(values), 2),
        }

    return {
        "assigned": Ticket.objects.filter(assignee__isnull=False).count(),
        "waiting": Ticket.objects.filter(assignee__isnull=True).count(),
        "max_open_load": max(loads.values()) if loads else 0,
        "agents_over_capacity": len(over),
        "queues": {slug: spread(v) for slug, v in sorted(per_queue.items())},
        "classes": {name: spread(v) for name, v in sorted(per_class.items())},
    }


def drain(capacity: int) -> dict:
    """Route a backlog: all tickets unassigned, routing started, then one drain per queue."""
    from servicedesk.routing.selectors import routed_queue_ids
    from servicedesk.routing.services import tickets_waiting_route

    started = time.perf_counter()
    assigned = 0
    while True:
        batch = tickets_waiting_route(queue_ids=routed_queue_ids(), trigger="waiting", limit=1000)
        assigned += batch
        if batch == 0:
            break
    seconds = time.perf_counter() - started
    return {"assigned": assigned, "seconds": round(seconds, 2), "tickets_per_second": round(assigned / seconds, 1)}


def _reset() -> None:
    """Back to no tickets and no routing, keeping agents, queues and customers."""
    from django.db import connection

    from servicedesk.routing.models import AgentProfile, QueueRouting

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE tickets_ticket RESTART IDENTITY CASCADE")
    QueueRouting.objects.all().delete()
    AgentProfile.objects.update(round_robin_position=0, last_assigned_at=None)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _child(*args: str, env: dict[str, str]) -> dict:
    done = subprocess.run([PYTHON, __file__, *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4, help="Processes creating tickets at once.")
    parser.add_argument("--flush", action="store_true", help="Empty the database first (all its data is deleted).")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
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
    }
    if args.worker or args.step:
        os.environ.update(env)
        _setup_django()
        if args.worker:
            first, stop, start_at = args.worker
            print(json.dumps(arrivals(int(first), int(stop), float(start_at))))
        elif args.step == "prepare":
            prepare(agents=args.agents, capacity=args.capacity)
            print("{}")
        elif args.step == "reset":
            _reset()
            print("{}")
        elif args.step == "routing":
            routing_start()
            print("{}")
        elif args.step == "fairness":
            print(json.dumps(fairness(args.capacity)))
        elif args.step == "drain":
            print(json.dumps(drain(args.capacity)))
        return

    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)
    if args.flush:
        subprocess.run([PYTHON, "manage.py", "flush", "--no-input"], cwd=ROOT, env=env, check=True, capture_output=True)
    common = ["--agents", str(args.agents), "--capacity", str(args.capacity)]
    _child("--step", "prepare", *common, env=env)
    report: dict = {
        "database": url.rsplit("@", 1)[-1],
        "tickets": args.tickets,
        "agents": args.agents,
        "capacity": args.capacity,
        "cpus": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # 1. Baseline: the same arrivals in manual queues (no routing), one process.
    _child("--step", "reset", env=env)
    report["baseline_manual"] = _workers(args.tickets, 1, env)
    # 2. Arrivals routed as they come, one process, then several at once.
    for workers in sorted({1, args.workers}):
        _child("--step", "reset", env=env)
        _child("--step", "routing", env=env)
        report[f"arrivals_{workers}"] = _workers(args.tickets, workers, env)
        report[f"fairness_{workers}"] = _child("--step", "fairness", *common, env=env)
    # 3. A backlog: tickets created while every queue is manual, then drained at once.
    _child("--step", "reset", env=env)
    _workers(args.tickets, 1, env)
    _child("--step", "routing", env=env)
    report["drain"] = _child("--step", "drain", *common, env=env)
    report["fairness_drain"] = _child("--step", "fairness", *common, env=env)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = OUT / f"routing-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
