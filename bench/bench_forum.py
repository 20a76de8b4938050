"""Community forum benchmark: a category's topic list and a topic page at 100,000 topics and 1,000,000 posts.

The pages (``channels_app.forum.views``): ``category_page``,
``/community/c/<slug>/`` (pinned first, then latest activity, 30 a page,
``?page=N``, ``?kind=``), and ``topic_page``, ``/community/t/<id>-<slug>/``
(the opening post, the accepted answers, then the replies, 20 a page).

1. **Build**, in a child process: a migrated template database copied for
   the run (``<name>_tpl``, ``<name>_run``, as bench_phone.py does); an
   organization, ``--members`` customers with their forum profiles (one in
   ten in the organization), three agents with theirs; ten categories (a big
   public one with 30 % of the topics, six public ones, one for signed-in
   customers, one for the organization, and a small public one of 40
   announcements). ``--topics`` topics (100,000) and ``--posts`` posts
   (1,000,000) written with ``COPY`` and ``INSERT ... SELECT
   generate_series``: most topics have a few posts, 95 have 100 to 1,000 and
   five 2,000 to 5,000; questions 60 %, discussions 25 %, ideas 15 %; 2 %
   hidden and 1 % held for approval (a dozen of them among the latest
   activity of the big category, one of them pinned, so page 1 would show
   them if they leaked), three pinned topics a category; of the replies 2 %
   hidden, 1 % held, one in 17 by staff; an accepted answer on 40 % of the
   questions with replies. Bodies are eight Markdown texts rendered once by
   the forum's own ``post_html`` and ``html_text``, titles and slugs made by
   ``topic_slug``. Posts are written in the order of their time, so a long
   topic's posts lie spread over the table as they would. The counters
   (topic: visible posts, last position, last activity, accepted answers,
   first replies; category: visible topics and their posts; member) are then
   computed from the rows as the services keep them, and checked against
   ``COUNT(*)`` on a sample. A customer of the organization signs in through
   a sign-in link (``signin_link_use``, the ``sd_help`` cookie) and an agent
   has a Django session. Then ``VACUUM ANALYZE``.
2. **Queries**, in a child process, ``django.test.Client``, anonymous, as
   the customer and as the agent: category page 1, the middle page, the
   last page (the last one the capped count reaches), the ideas' page 1 and
   last page, page 1 of the small category; a topic with a few posts, and
   page 1, the middle page and the last page of the biggest topic; each
   after one unmeasured request, under ``CaptureQueriesContext``: the number
   of SQL statements, each one's time, ``EXPLAIN (ANALYZE, BUFFERS)`` of the
   statements reading topics and posts, the median in-process time of
   ``--inprocess-runs`` requests. The count must be the same on every
   category page and on every topic page, per viewer, or the run fails.
3. **Requests** to ``python -m servicedesk.serve`` (``--workers``
   processes, ``DEBUG`` off, PostgreSQL, Redis at ``REDIS_URL``): for each
   number of clients in ``--clients`` (default ``1,4``, keep-alive
   connections sending at once), each page kind ``--warmup`` times per
   client (not counted), then ``--requests`` times (300): the anonymous
   pages above but the small category, and category page 1 and the big
   topic's last page as the customer and as the agent. Reported per page
   and overall: p50/p95/p99/max latency, requests a second, and the CPU of
   the server and of the PostgreSQL backends serving it per request.

Every answer must be 200 and list what the database says the page holds
(the topic ids of a category page in order, from an ORM query written here
with the rules of docs/community.md; the posts of a topic page by position;
no hidden or held topic to a reader who is not staff), or the run fails
(after the JSON is written). Goal: constant queries and p95 under 100 ms.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_benchforum REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/bench_forum.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from bench_chat import _percentiles  # noqa: E402
from bench_intake import database_drop, server_version, uvicorn_running  # noqa: E402
from bench_phone import CpuWindow, _machine, _server_pid, databases_prepared  # noqa: E402
from bench_portal import StatementTimer, _versions, keepalive_requests, vacuum_analyze  # noqa: E402

HELP_COOKIE = "sd_help"
TOPICS_PER_PAGE = 30
REPLIES_PER_PAGE = 20
COUNT_CAP = 10_000
# (slug, name, visibility, share of the topics); the small category has SMALL_TOPICS announcements.
CATEGORIES = [
    ("general", "General questions", "public", 30),
    ("billing", "Billing", "public", 10),
    ("orders", "Orders and delivery", "public", 10),
    ("account", "Your account", "public", 10),
    ("mobile-app", "The mobile app", "public", 10),
    ("ideas", "Ideas", "public", 10),
    ("integrations", "Integrations", "public", 10),
    ("customers", "Customers' corner", "signed_in", 5),
    ("partners", "Partner programme", "organization", 5),
    ("news", "News", "public", 0),
]
SMALL_TOPICS = 40
BIG_SIZES = (5000, 4000, 3000, 2500, 2000)
LARGE_TOPICS = 95  # 100 to 1,000 posts each
TITLES = (
    "How do I reset my password",
    "Order arrived damaged, what now",
    "Invoice shows the wrong VAT number",
    "App crashes when I open settings",
    "Can I change the delivery address after ordering",
    "Export my data to a spreadsheet",
    "Dark mode for the mobile app",
    "Two-factor sign-in with a security key",
    "Refund still not received after two weeks",
    "Which plan includes the API",
    "Sync stops after the latest update",
    "Tips for setting up shared inboxes",
)
BODIES = (
    "I tried the steps in the help centre but it still fails.\n\nAny idea what I am missing?",
    "Same here since **Tuesday**. It started after the update to version 4.2.\n\n- Restarted\n- Signed out and in",
    "You can do this from *Settings > Account*. If the option is greyed out, your plan does not include it.",
    "Thanks, that worked!",
    "Could you post the exact message you see? A screenshot helps too.\n\n```\nError 502: upstream timed out\n```",
    "We are looking into it: the fix ships with the next release. Until then, clearing the cache works around it.",
    "1. Open the order\n2. Choose *Change address*\n3. Save\n\nThis works until the parcel is handed to the carrier.",
    "+1, I would really like this as well. See [the roadmap](https://example.com/roadmap) for what is planned.",
)
TOPIC_ROW = re.compile(r'href="/community/t/(\d+)-')
POST_ROW = re.compile(r'<article class="card forum-post[^"]*" id="post-(\d+)"')


# --- Build (child process) ---------------------------------------------------------------------------------------


def _post_counts(rng: random.Random, topics: int, posts: int, fixed: dict[int, int]) -> list[int]:
    """Posts per topic: most a few (1 + exponential, mean about 9), ``fixed`` ones as given; summing to ``posts``."""
    counts = [1 + int(rng.expovariate(1 / 8.3)) for _ in range(topics)]
    for index, n in fixed.items():
        counts[index] = n
    free = [i for i in range(topics) if i not in fixed]
    total = sum(counts)
    while total != posts:
        i = rng.choice(free)
        if total < posts:
            counts[i] += 1
            total += 1
        elif counts[i] > 1:
            counts[i] -= 1
            total -= 1
    return counts


def step_setup(topics: str, posts: str, members: str, seed: str, out: str) -> dict:
    """Members, categories, topics and posts with their counters, two signed-in viewers; what each page must list."""
    import hashlib
    import secrets

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection, transaction
    from django.utils import timezone

    from channels_app.forum.models import Category, Member, Post, Topic
    from channels_app.forum.services import html_text, post_html, topic_slug
    from channels_app.web.models import SignInLink
    from channels_app.web.signin import signin_link_use
    from servicedesk.accounts.models import User
    from servicedesk.tickets.models import Customer, Organization

    rng = random.Random(int(seed))
    topics_n, posts_n, members_n = int(topics), int(posts), int(members)
    now = timezone.now().replace(microsecond=0)
    span = 730 * 86_400
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.perf_counter() - since, 1)
        return time.perf_counter()

    with transaction.atomic():
        org = Organization.objects.create(name="Bench Partners")
        customers = Customer.objects.bulk_create(
            Customer(
                name=f"Bench Member{n}",
                language="en",
                organization=org if n % 10 == 0 else None,
                created_at=now - timedelta(days=800),
            )
            for n in range(members_n)
        )
        customer_members = Member.objects.bulk_create(
            Member(
                customer=c,
                handle=f"member{n}",
                display_name=f"Member {n}",
                trust_level=2,
                created_at=now - timedelta(days=800),
            )
            for n, c in enumerate(customers)
        )
        role = Group.objects.get_or_create(name="agent")[0]
        agents = []
        for n in range(3):
            user = User.objects.create_user(username=f"bench-forum-{n}", email=f"forum-agent{n}@bench.example")
            user.groups.add(role)
            agents.append(user)
        agent_members = Member.objects.bulk_create(
            Member(user=u, handle=f"staff{n}", display_name=f"Staff {n}", trust_level=4, created_at=now)
            for n, u in enumerate(agents)
        )
        categories = Category.objects.bulk_create(
            Category(
                slug=slug,
                name=name,
                description=f"{name}: ask and answer.",
                visibility=visibility,
                organization=org if visibility == "organization" else None,
                position=position,
            )
            for position, (slug, name, visibility, _share) in enumerate(CATEGORIES)
        )
        t = lap("members_categories", started)

        # The plan of each topic, in Python: category, kind, state, size, times, author, title.
        small_category = categories[-1]
        weighted = [(c, share) for c, (_s, _n, _v, share) in zip(categories, CATEGORIES, strict=True) if share]
        big = categories[0]
        plan_categories = [small_category] * SMALL_TOPICS + rng.choices(
            [c for c, _ in weighted], [w for _, w in weighted], k=topics_n - SMALL_TOPICS
        )
        in_big = [i for i, c in enumerate(plan_categories) if c is big]
        sized = rng.sample(in_big, len(BIG_SIZES) + LARGE_TOPICS)
        fixed = dict(zip(sized, [*BIG_SIZES, *(rng.randint(100, 1000) for _ in range(LARGE_TOPICS))], strict=True))
        biggest_index = sized[0]
        # A dozen hidden or held topics of the big category get its latest activity (one of them pinned).
        fresh_unlisted = sorted(rng.sample([i for i in in_big if i not in fixed], 12))
        kinds, states = [], []
        for i, category in enumerate(plan_categories):
            if category is small_category:
                kind, state = "announcement", "visible"
            else:
                kind = rng.choices(["question", "discussion", "idea"], [60, 25, 15])[0]
                roll = rng.random()
                state = "hidden" if roll < 0.02 else ("held" if roll < 0.03 else "visible")
            if i in fixed:
                state, kind = "visible", ("question" if i == biggest_index else kind)
            kinds.append(kind)
            states.append(state)
        for n, i in enumerate(fresh_unlisted):
            states[i] = "hidden" if n % 2 == 0 else "held"
        # A held topic was held on creation: nobody can reply to it, it has its opening post only.
        fixed.update({i: 1 for i, state in enumerate(states) if state == "held"})
        counts = _post_counts(rng, topics_n, posts_n, fixed)
        fresh = set(fresh_unlisted)
        by_category: dict[int, list[int]] = {}
        for i, c in enumerate(plan_categories):
            by_category.setdefault(c.pk, []).append(i)
        rows = []
        for i, category in enumerate(plan_categories):
            n, kind, state = counts[i], kinds[i], states[i]
            gap = 600 if n >= 100 else rng.randint(60, 7200)
            ago = rng.uniform(0, 3600) if i in fresh else rng.uniform(0, span)
            created = now - timedelta(seconds=(n - 1) * gap + ago + 60)
            author = rng.choice(agent_members) if kind == "announcement" else rng.choice(customer_members)
            accepted = 0
            if kind == "question" and state != "held" and n >= 2 and (rng.random() < 0.4 or i == biggest_index):
                accepted = rng.randint(2, n)
            title = f"{rng.choice(TITLES)} #{i + 1}"
            rows.append(
                [
                    i + 1,
                    category.pk,
                    kind,
                    title,
                    topic_slug(title),
                    author.pk,
                    author.customer_id,
                    state,
                    rng.random() < 0.01,
                    False,
                    n,
                    gap,
                    created,
                    accepted,
                ]
            )
        for pks in by_category.values():
            listed = [i for i in pks if rows[i][7] == "visible"]
            for i in rng.sample(listed, min(3, len(listed))):
                rows[i][9] = True
        rows[fresh_unlisted[0]][9] = True  # hidden and pinned
        biggest_id = biggest_index + 1
        t = lap("plan", t)

        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE bench_plan (id bigint PRIMARY KEY, category_id bigint, kind text, title text,"
                " slug text, author_id bigint, customer_id bigint, state text, locked boolean, pinned boolean,"
                " n integer, gap integer, created_at timestamptz, accepted_pos integer)"
            )
            with cursor.copy(
                "COPY bench_plan (id, category_id, kind, title, slug, author_id, customer_id, state, locked, pinned,"
                " n, gap, created_at, accepted_pos) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                "INSERT INTO forum_channel_topic (id, category_id, kind, title, slug, author_id, customer_id, state,"
                " locked, pinned, merged_into_id, posts_count, last_position, likes_count, votes_count,"
                " me_too_count, accepted_count, created_at, last_post_at)"
                " SELECT id, category_id, kind, title, slug, author_id, customer_id, state, locked, pinned, NULL,"
                " 0, n, 0, 0, 0, 0, created_at, created_at FROM bench_plan ORDER BY created_at"
            )
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('forum_channel_topic', 'id'), (SELECT max(id) FROM bench_plan))"
            )
            t = lap("topics", t)
            bodies = [(b, post_html(b), html_text(post_html(b))) for b in BODIES]
            # Replies: 2 % hidden, 1 % held; one in 17 by staff; the planned accepted answer if it is visible.
            cursor.execute(
                """
                INSERT INTO forum_channel_post (topic_id, position, author_id, is_staff, body, body_html, body_text,
                    state, hold_reason, accepted, accepted_by_id, accepted_at, likes_count, flags_count,
                    revisions_count, created_at)
                SELECT x.id, x.pos,
                    CASE WHEN x.pos = 1 THEN x.author_id
                         WHEN x.staff THEN (%(agents)s::bigint[])[1 + (x.id + x.pos) %% %(agents_n)s]
                         ELSE (%(members)s::bigint[])[1 + (x.id * 7919 + x.pos * 104729) %% %(members_n)s] END,
                    x.pos = 1 AND x.author_is_staff OR x.staff,
                    (%(body)s::text[])[1 + (x.id * 7 + x.pos) %% 8],
                    (%(html)s::text[])[1 + (x.id * 7 + x.pos) %% 8],
                    (%(text)s::text[])[1 + (x.id * 7 + x.pos) %% 8],
                    x.state,
                    CASE WHEN x.state = 'held' THEN 'new_member' ELSE '' END,
                    x.accepted,
                    CASE WHEN x.accepted THEN x.author_id END,
                    CASE WHEN x.accepted THEN least(x.at + interval '1 hour', %(now)s) END,
                    0, 0, 0, x.at
                FROM (
                    SELECT p.id, s.pos, p.author_id, p.customer_id IS NULL AS author_is_staff,
                        p.created_at + (s.pos - 1) * p.gap * interval '1 second' AS at,
                        s.pos > 1 AND (p.id + s.pos * 31) %% 17 = 0 AS staff,
                        CASE WHEN s.pos = 1 THEN CASE WHEN p.state = 'held' THEN 'held' ELSE 'visible' END
                             WHEN (p.id * 7919 + s.pos * 104729) %% 100 < 2 THEN 'hidden'
                             WHEN (p.id * 7919 + s.pos * 104729) %% 100 = 2 THEN 'held'
                             ELSE 'visible' END AS state,
                        s.pos = p.accepted_pos AND (p.id * 7919 + s.pos * 104729) %% 100 > 2 AS accepted
                    FROM bench_plan p CROSS JOIN LATERAL generate_series(1, p.n) AS s(pos)
                    ORDER BY at
                ) x
                """,
                {
                    "agents": [m.pk for m in agent_members],
                    "agents_n": len(agent_members),
                    "members": [m.pk for m in customer_members],
                    "members_n": len(customer_members),
                    "body": [b[0] for b in bodies],
                    "html": [b[1] for b in bodies],
                    "text": [b[2] for b in bodies],
                    "now": now,
                },
            )
            t = lap("posts", t)
            # The counters, as the services keep them: visible posts, the last position, last activity...
            cursor.execute(
                """
                UPDATE forum_channel_topic t SET posts_count = a.visible, accepted_count = a.accepted,
                    last_post_at = coalesce(a.last_at, t.created_at), first_reply_at = a.first_reply,
                    first_staff_reply_at = a.first_staff, answered_at = a.answered
                FROM (
                    SELECT p.topic_id, count(*) FILTER (WHERE p.state = 'visible') AS visible,
                        count(*) FILTER (WHERE p.accepted) AS accepted,
                        max(p.created_at) FILTER (WHERE p.state = 'visible') AS last_at,
                        min(p.created_at) FILTER (WHERE p.position > 1 AND p.state = 'visible'
                            AND p.author_id <> b.author_id) AS first_reply,
                        min(p.created_at) FILTER (WHERE p.position > 1 AND p.state = 'visible' AND p.is_staff)
                            AS first_staff,
                        min(p.accepted_at) AS answered
                    FROM forum_channel_post p JOIN bench_plan b ON b.id = p.topic_id
                    GROUP BY p.topic_id
                ) a
                WHERE a.topic_id = t.id
                """
            )
            cursor.execute(
                """
                UPDATE forum_channel_category c SET topics_count = a.topics, posts_count = a.posts,
                    last_post_at = a.last_at
                FROM (
                    SELECT category_id, count(*) AS topics, sum(posts_count) AS posts, max(last_post_at) AS last_at
                    FROM forum_channel_topic WHERE state = 'visible' AND merged_into_id IS NULL GROUP BY category_id
                ) a
                WHERE a.category_id = c.id
                """
            )
            cursor.execute(
                """
                UPDATE forum_channel_member m SET topics_count = coalesce(t.n, 0), posts_count = coalesce(p.n, 0),
                    accepted_count = coalesce(p.accepted, 0), last_posted_at = p.last_at
                FROM forum_channel_member m2
                LEFT JOIN (SELECT author_id, count(*) AS n FROM forum_channel_topic WHERE state = 'visible'
                           GROUP BY author_id) t ON t.author_id = m2.id
                LEFT JOIN (SELECT author_id, count(*) FILTER (WHERE state = 'visible') AS n,
                           count(*) FILTER (WHERE accepted) AS accepted, max(created_at) AS last_at
                           FROM forum_channel_post GROUP BY author_id) p ON p.author_id = m2.id
                WHERE m.id = m2.id
                """
            )
            cursor.execute("DROP TABLE bench_plan")
            t = lap("counters", t)

        # The signed-in customer (in the organization, so its category is theirs) and the agent.
        reader = customer_members[0]
        token = secrets.token_urlsafe(32)
        SignInLink.objects.create(
            customer=reader.customer,
            address="forum@bench.example",
            digest=hashlib.sha256(token.encode()).hexdigest(),
            created_at=now,
            expires_at=now + timedelta(minutes=15),
        )
        help_key = str(signin_link_use(token=token, user_agent="bench_forum"))
        store = SessionStore()
        store[SESSION_KEY] = str(agents[0].pk)
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        store[HASH_SESSION_KEY] = agents[0].get_session_auth_hash()
        store.create()
        agent_cookie = f"{settings.SESSION_COOKIE_NAME}={store.session_key}"
    built = time.perf_counter() - started

    # Counters against COUNT(*) on a sample (and every category).
    sample = [biggest_id, *rng.sample(range(1, topics_n + 1), 300)]
    mismatched = []
    for topic in Topic.objects.filter(pk__in=sample):
        posts_of = Post.objects.filter(topic=topic)
        found = (
            posts_of.filter(state="visible").count(),
            max(posts_of.values_list("position", flat=True)),
            posts_of.filter(accepted=True).count(),
        )
        if found != (topic.posts_count, topic.last_position, topic.accepted_count):
            mismatched.append({"topic": topic.pk, "counted": found})
    for category in Category.objects.all():
        listed = Topic.objects.filter(category=category, state="visible", merged_into__isnull=True)
        found = (listed.count(), sum(listed.values_list("posts_count", flat=True)))
        if found != (category.topics_count, category.posts_count):
            mismatched.append({"category": category.slug, "counted": found})

    small_topic = (
        Topic.objects.filter(category=big, state="visible", kind="question", posts_count=4, accepted_count=1)
        .order_by("id")
        .first()
    )
    assert small_topic is not None
    biggest = Topic.objects.get(pk=biggest_id)
    expected = _expected_pages(
        big=big,
        small_category=small_category,
        small_topic=small_topic,
        biggest=biggest,
        reader=reader,
    )
    unlisted_ids = list(Topic.objects.exclude(state="visible").values_list("id", flat=True))
    fresh_ids = [i + 1 for i in fresh_unlisted]
    Path(out).write_text(
        json.dumps(
            {
                "viewers": {"anonymous": "", "customer": f"{HELP_COOKIE}={help_key}", "agent": agent_cookie},
                "pages": expected,
                "unlisted": unlisted_ids,
            }
        )
    )
    return {
        "seconds": round(built, 1),
        "seconds_by_stage": timings,
        "members": members_n + len(agent_members),
        "categories": len(categories),
        "topics": Topic.objects.count(),
        "topics_by_state": dict(Counter(Topic.objects.values_list("state", flat=True))),
        "topics_by_kind": dict(Counter(Topic.objects.values_list("kind", flat=True))),
        "topics_by_category": {c.slug: c.topics_count for c in Category.objects.order_by("position")},
        "pinned": Topic.objects.filter(pinned=True).count(),
        "posts": Post.objects.count(),
        "posts_by_state": dict(Counter(Post.objects.values_list("state", flat=True))),
        "accepted_answers": Post.objects.filter(accepted=True).count(),
        "questions_answered": Topic.objects.filter(kind="question", accepted_count__gt=0).count(),
        "posts_per_topic": {
            "median": statistics.median(counts),
            "p99": sorted(counts)[int(0.99 * len(counts))],
            "max": max(counts),
            "topics_over_100": sum(1 for c in counts if c >= 100),
        },
        "biggest_topic": {"id": biggest_id, "posts": biggest.last_position, "visible": biggest.posts_count},
        "small_topic": {"id": small_topic.pk, "posts": small_topic.last_position},
        "unlisted_among_latest_of_big_category": fresh_ids,
        "counters_checked": {"topics": len(sample), "categories": len(categories), "mismatched": mismatched},
    }


def _expected_pages(*, big: Any, small_category: Any, small_topic: Any, biggest: Any, reader: Any) -> dict:
    """Per viewer, each measured page's path and what it must list: written here from docs/community.md's
    rules (not through access.py), so the check is independent of the views."""
    from django.db.models import Q

    from channels_app.forum.models import Post, Topic

    def topics_for(viewer: str, category: Any, kind: str = "") -> Any:
        found = Topic.objects.filter(category=category, merged_into__isnull=True)
        if viewer != "agent":
            found = found.filter(state="visible")  # lists leave out even the reader's own held topics
        if kind:
            found = found.filter(kind=kind)
        return found.order_by("-pinned", "-last_post_at", "-id")

    def posts_for(viewer: str, topic: Any) -> Any:
        found = Post.objects.filter(topic=topic)
        if viewer == "customer":
            return found.filter(Q(state="visible") | Q(author=reader))
        if viewer == "anonymous":
            return found.filter(state="visible")
        return found

    def category_page(viewer: str, category: Any, which: str, kind: str = "") -> dict:
        topics = topics_for(viewer, category, kind)
        counted = min(topics[: COUNT_CAP + 1].count(), COUNT_CAP)
        last = max(1, -(-counted // TOPICS_PER_PAGE))
        number = {"first": 1, "middle": (last + 1) // 2, "last": last}[which]
        start = (number - 1) * TOPICS_PER_PAGE
        # The capped count ends the last page at row COUNT_CAP (CappedPaginator).
        ids = list(topics.values_list("id", flat=True)[start : min(start + TOPICS_PER_PAGE, counted)])
        query = f"?kind={kind}&page={number}" if kind else f"?page={number}"
        return {
            "path": f"/community/c/{category.slug}/{query}",
            "kind": "category",
            "page": number,
            "pages": last,
            "count_capped": counted == COUNT_CAP,
            "ids": ids,
        }

    def topic_page(viewer: str, topic: Any, which: str) -> dict:
        posts = posts_for(viewer, topic)
        head = list(
            posts.filter(Q(position=1) | Q(accepted=True)).order_by("position").values_list("position", flat=True)
        )
        replies = posts.filter(position__gt=1).order_by("position")
        counted = min(replies[: COUNT_CAP + 1].count(), COUNT_CAP)
        last = max(1, -(-counted // REPLIES_PER_PAGE))
        number = {"first": 1, "middle": (last + 1) // 2, "last": last}[which]
        start = (number - 1) * REPLIES_PER_PAGE
        shown = list(replies.values_list("position", flat=True)[start : min(start + REPLIES_PER_PAGE, counted)])
        return {
            "path": f"/community/t/{topic.pk}-{topic.slug}/?page={number}",
            "kind": "topic",
            "page": number,
            "pages": last,
            "replies": counted,
            "ids": head + shown,
        }

    pages: dict[str, dict] = {}
    for viewer in ("anonymous", "customer", "agent"):
        pages[viewer] = {
            "category, page 1": category_page(viewer, big, "first"),
            "category, middle page": category_page(viewer, big, "middle"),
            "category, last page": category_page(viewer, big, "last"),
            "category ideas, page 1": category_page(viewer, big, "first", "idea"),
            "category ideas, last page": category_page(viewer, big, "last", "idea"),
            "small category, page 1": category_page(viewer, small_category, "first"),
            "small topic": topic_page(viewer, small_topic, "first"),
            "big topic, page 1": topic_page(viewer, biggest, "first"),
            "big topic, middle page": topic_page(viewer, biggest, "middle"),
            "big topic, last page": topic_page(viewer, biggest, "last"),
        }
    return pages


# --- Queries (child process) -------------------------------------------------------------------------------------


def _listed(kind: str, html: str) -> list[int]:
    return [int(x) for x in (TOPIC_ROW if kind == "category" else POST_ROW).findall(html)]


def step_queries(setup_path: str, runs: str) -> dict:
    """Each page for each viewer through the test client: SQL statements (count, each one's time, plans)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    setup = json.loads(Path(setup_path).read_text())
    found: dict[str, Any] = {}
    for viewer, pages in setup["pages"].items():
        cookie = setup["viewers"][viewer]
        for name, page in pages.items():
            client = Client()
            if cookie:
                key, value = cookie.split("=", 1)
                client.cookies[key] = value
            path = page["path"]
            client.get(path)  # first request: lazy imports, the connection, the session's last-seen time
            timer = StatementTimer()
            with connection.execute_wrapper(timer), CaptureQueriesContext(connection) as captured:
                response = client.get(path)
            logged = list(captured.captured_queries)
            listed = _listed(page["kind"], response.content.decode())
            walls, db_times = [], []
            for _ in range(int(runs)):
                each = StatementTimer()
                with connection.execute_wrapper(each):
                    began = time.perf_counter()
                    client.get(path)
                    walls.append(time.perf_counter() - began)
                db_times.append(sum(each.seconds))
            statements = [
                {"ms": round(1000 * seconds, 2), "sql": q["sql"][:800]}
                for seconds, q in zip(timer.seconds, logged, strict=True)
            ]
            with connection.cursor() as cursor:
                for statement, q in zip(statements, logged, strict=True):
                    sql = q["sql"]
                    if sql.startswith("SELECT") and ("forum_channel_topic" in sql or "forum_channel_post" in sql):
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                        statement["plan"] = [row[0] for row in cursor.fetchall()]
            found[f"{viewer}: {name}"] = {
                "viewer": viewer,
                "page_name": name,
                "kind": page["kind"],
                "path": path,
                "status": response.status_code,
                "rows": len(listed),
                "rows_as_expected": listed == page["ids"],
                "queries": len(logged),
                "statements": statements,
                "in_process_ms": round(1000 * statistics.median(walls), 2),
                "in_process_db_ms": round(1000 * statistics.median(db_times), 2),
                "html_bytes": len(response.content),
            }
    return found


# --- Requests ------------------------------------------------------------------------------------------------------


def requests_run(
    port: int, page: dict, cookie: str, unlisted: set[int], count: int, clients: int, warmup: int
) -> dict[str, Any]:
    """``count`` requests of one page by ``clients`` keep-alive connections at once, each answer checked."""
    path = page["path"]
    headers = {"Accept": "text/html", "User-Agent": "bench_forum"}
    if cookie:
        headers["Cookie"] = cookie

    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"{status} {body[:200]!r}"
        listed = _listed(page["kind"], body.decode(errors="replace"))
        if listed != page["ids"]:
            shown = sorted(set(listed) & unlisted) if page["kind"] == "category" else []
            return f"{len(listed)} rows, not the {len(page['ids'])} expected in order" + (
                f"; hidden or held topics listed {shown[:5]}" if shown else ""
            )
        return None

    return keepalive_requests(port, path, headers, check, count=count, clients=clients, warmup=warmup)


def _child_step(env: dict[str, str], step: str, *args: str) -> dict[str, Any]:
    """A step of this file in a child process (bench_portal's, for this file): its last line of JSON."""
    done = subprocess.run(
        [sys.executable, __file__, "--step", step, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-6000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# Which pages the requests measure, per viewer.
MEASURED = {
    "anonymous": [
        "category, page 1",
        "category, middle page",
        "category, last page",
        "category ideas, last page",
        "small topic",
        "big topic, page 1",
        "big topic, middle page",
        "big topic, last page",
    ],
    "customer": ["category, page 1", "big topic, last page"],
    "agent": ["category, page 1", "big topic, last page"],
}


def _constant(queries: dict[str, Any]) -> dict[str, Any]:
    """Per viewer and kind of page, the distinct statement counts (one each when constant)."""
    counts: dict[str, set[int]] = {}
    for q in queries.values():
        counts.setdefault(f"{q['viewer']}, {q['kind']}", set()).add(q["queries"])
    return {key: sorted(values) for key, values in counts.items()}


def main() -> None:
    if sys.argv[1:2] == ["--step"]:
        import django

        django.setup()
        steps = {"setup": step_setup, "queries": step_queries}
        print(json.dumps(steps[sys.argv[2]](*sys.argv[3:]), default=str))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=100_000, help="Topics (100000).")
    parser.add_argument("--posts", type=int, default=1_000_000, help="Posts, opening posts included (1000000).")
    parser.add_argument("--members", type=int, default=5000, help="Customers with a forum profile (5000).")
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
        "--inprocess-runs", type=int, default=10, help="In-process requests per page for its median time (10)."
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-databases", action="store_true")
    args = parser.parse_args()
    if args.posts < args.topics + sum(BIG_SIZES) + 1000 * LARGE_TOPICS or args.topics < 1000:
        raise SystemExit("--posts must leave room for the long topics (at least --topics + 111,500), --topics >= 1000")
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL database (the benchmark refuses SQLite).")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        raise SystemExit("Set REDIS_URL to a Redis database of the benchmark's own: it is emptied (FLUSHDB).")
    import redis

    base = url.rsplit("/", 1)[1]
    template, run_db = f"{base}_tpl", f"{base}_run"
    work = Path(tempfile.mkdtemp(prefix="sd-bench-forum-"))
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
        "benchmark": "forum",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": vars(args),
        "machine": _machine(),
        "python": sys.version.split()[0],
        "versions": _versions(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    failures: list[str] = []
    runs: list[dict[str, Any]] = []
    queries: dict[str, Any] = {}
    try:
        report["postgresql"] = server_version(url)
        started = time.perf_counter()
        run_url = databases_prepared(url, template, run_db, work, env)
        report["migrate_seconds"] = round(time.perf_counter() - started, 1)
        var_dir = work / "var"
        var_dir.mkdir()
        run_env = {**env, "DATABASE_URL": run_url, "SERVICEDESK_VAR_DIR": str(var_dir)}
        setup_path = work / "setup.json"
        report["setup"] = _child_step(
            run_env,
            "setup",
            *map(str, (args.topics, args.posts, args.members, args.seed)),
            str(setup_path),
        )
        began = time.perf_counter()
        vacuum_analyze(run_url)
        report["setup"]["vacuum_analyze_seconds"] = round(time.perf_counter() - began, 1)
        report["setup"]["seconds_with_migrate_and_vacuum"] = round(time.perf_counter() - started, 1)
        setup = json.loads(setup_path.read_text())
        report["pages"] = {
            viewer: {name: {k: v for k, v in page.items() if k != "ids"} for name, page in pages.items()}
            for viewer, pages in setup["pages"].items()
        }
        print(f"set-up: {json.dumps(report['setup'], default=str)}", flush=True)
        if report["setup"]["counters_checked"]["mismatched"]:
            failures.append(f"counters do not match COUNT(*): {report['setup']['counters_checked']['mismatched'][:5]}")

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
        constant = _constant(queries)
        for key, values in constant.items():
            if len(values) != 1:
                failures.append(f"queries not constant for {key} pages: {values}")

        redis.Redis.from_url(redis_url).flushdb()
        unlisted = set(setup["unlisted"])
        with uvicorn_running(run_env, args.workers) as port:
            server_pid = _server_pid(port)
            for clients in args.clients:
                by_page: dict[str, Any] = {}
                all_times: list[float] = []
                seconds = 0.0
                window = CpuWindow(server_pid, None, url, run_db)
                window.start()
                for viewer, names in MEASURED.items():
                    cookie = setup["viewers"][viewer]
                    for name in names:
                        page = setup["pages"][viewer][name]
                        result = requests_run(port, page, cookie, unlisted, args.requests, clients, args.warmup)
                        all_times += result.pop("_times")
                        seconds += result["seconds"]
                        label = f"{viewer}: {name}"
                        by_page[label] = result
                        lat = result["latency_ms"]
                        print(
                            f"  {clients} client(s), {label}: p50 {lat.get('p50')} p95 {lat.get('p95')}"
                            f" p99 {lat.get('p99')} max {lat.get('max')} ms, {result['requests_per_second']} req/s,"
                            f" statuses {result['statuses']}, wrong {result['wrong_answers']}",
                            flush=True,
                        )
                        if result["statuses"] != {"200": args.requests} or result["wrong_answers"] or result["errors"]:
                            failures.append(
                                f"{clients} client(s), {label}: statuses {result['statuses']},"
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
                        "load_average_after": [round(x, 2) for x in os.getloadavg()],
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
        worst_page = max((p["latency_ms"].get("p95", 0) for r in runs for p in r["pages"].values()), default=None)
        report["goal"] = {
            "goal": "constant queries, p95 < 100 ms",
            "queries_per_page": {name: q["queries"] for name, q in queries.items()},
            "distinct_counts_by_viewer_and_kind": constant,
            "constant_queries": all(len(v) == 1 for v in constant.values()),
            "worst_page_p95_ms": worst_page,
            "p95_met_by_clients": {
                str(r["clients"]): all(p["latency_ms"].get("p95", 1e9) < 100 for p in r["pages"].values()) for r in runs
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
        path = OUT / f"forum-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(report, indent=2, default=str))
        print(f"JSON: {path}", flush=True)

    print(f"\nCommunity forum, {args.topics:,} topics and {args.posts:,} posts ({args.workers} server process(es)):")
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
        f"statement counts by viewer and kind of page: {goal['distinct_counts_by_viewer_and_kind']}"
        f" (constant: {goal['constant_queries']}); p95 < 100 ms on every page: {goal['p95_met_by_clients']}"
    )
    if failures:
        raise SystemExit("FAILED:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
