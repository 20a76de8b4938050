"""Ticket search benchmark: the inbox's search box and the API's ``?search=`` at 1,000,000 tickets
and 5,000,000 messages, and the inbox's own pages at that size.

The search (docs/search.md): ``servicedesk/tickets/search.py`` (the text, a
``tsvector`` document per message, one per ticket's subject and reference and
one for its tags, kept by database triggers, a GIN index) and ``ticket_search``
in ``servicedesk/tickets/selectors.py`` (names, addresses, references, the
ranking and the broad path).

1. **Build** (a child process), into the database of ``DATABASE_URL``, which
   is dropped and created again (``--skip-build`` measures the data already
   there): ``manage.py migrate``; four queues, ``--agents`` agents (20) and a
   manager, the agent ``a0`` a member of two queues (support and billing,
   about 70 % of the tickets); ``--customers`` customers (200,000) with
   English or Chinese names and an address each; ``--tickets`` tickets
   (1,000,000) over two years, one customer in ten writing Chinese, statuses
   by age, channels and queues mixed, 70 % assigned, 30 % tagged (40 tags);
   ``--messages`` messages (5,000,000): the customer's first message, then
   replies, customer answers and internal notes (one in ten). Texts are drawn
   from a vocabulary with Zipf's law (a word's frequency falls as 1/rank):
   150 common support words, then 30,000 made-up words, so some words are in
   a million messages and some in a few hundred; Chinese texts the same from
   Chinese words; one message in five names an order number of 8 digits
   (found in one or two messages). Everything is written with ``COPY`` with
   the triggers off, then the search documents are written as migration
   ``tickets.0026`` writes them for existing rows (``search_documents_backfill``,
   on two connections at once), the GIN index is built and ``VACUUM ANALYZE``
   runs.
2. **Queries**: terms of each kind, with how many documents and tickets
   match each (counted with the search's own ``tsquery``): a rare word (a few
   hundred messages), a middling word (a few thousand, around the limit of
   what is ranked), a common word (hundreds of thousands: the broad path),
   two words, a quoted phrase, an English word in another form (plural), an
   order number, a reference typed in full, a customer's address in full, a
   customer's name, a tag, a Chinese word of two or three characters, Chinese
   of four to six, a word without a match, and searches combined with a
   filter (status, queue).
3. **Requests** (a child process, ``django.test.Client``, ``DEBUG`` off,
   settings ``servicedesk.settings.local`` with the web server's defaults
   (``servicedesk.serve.server_environment_set``: a pool of connections, no
   parallel workers; the API's limits per user and address raised, which
   ``--requests`` above 5 would pass), the garbage collector set as the web server sets it in
   ``servicedesk/asgi.py``): as the manager (every ticket) and
   as ``a0`` (two queues), ``/desk/?q=`` and ``/api/v1/tickets/?search=``,
   each term once under ``CaptureQueriesContext`` (its SQL statements and the
   slowest, not timed: the capture costs time of its own) and then
   ``--requests`` times (5), timed; then the inbox's own pages without a search
   (first page, page 2, status, channel, priority, a tag, sorts, the built-in
   views), ``--requests`` times each. Reported: p50/p95/max per kind and
   overall, the number of SQL statements and the slowest statement of each
   kind, and ``EXPLAIN (ANALYZE, BUFFERS)`` of the slowest statement of the
   slowest search kinds.

Checked: every answer is 200; for a term matching few tickets the API lists
every ticket whose documents match (as the manager), and every ticket it lists
either matches or has the term in its subject or its customer's name; the
agent never gets a ticket outside their queues. Otherwise the run fails
(exit status 1, after the JSON is written). The goal (p95 < 150 ms for the
search and the inbox) is reported beside the figures.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sd_benchsearch \\
        .venv/bin/python bench/bench_search.py                       # build (about 15 minutes) and measure (4)
    DATABASE_URL=... .venv/bin/python bench/bench_search.py --skip-build
    DATABASE_URL=... .venv/bin/python bench/bench_search.py --tickets 20000 --messages 100000 --customers 4000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=730)
GOAL_MS = 150.0
COMMA = "\uff0c"  # the full-width comma that separates Chinese clauses


def _words(text: str) -> list[str]:
    return text.split()


COMMON_WORDS = _words(
    "printer invoice refund password login account order delivery payment error update install screen "
    "battery charger cable warranty shipping return replacement subscription billing card bank transfer "
    "email address phone number message notification setting profile upload download file folder backup "
    "sync server network router connection wifi bluetooth speaker camera photo video audio microphone "
    "keyboard mouse monitor laptop tablet driver software firmware license key activation code voucher "
    "discount price tax receipt statement balance credit debit charge cancel pause renew upgrade "
    "downgrade plan trial feature report export import calendar meeting schedule booking reservation "
    "ticket support agent manager team company office store branch parcel package courier tracking "
    "label address customs duty size colour color model serial broken damaged missing late slow crash "
    "freeze reboot restart reset unlock locked blocked expired invalid failed declined pending approved "
    "shipped delivered received opened closed urgent question problem issue request complaint thanks "
    "help please today tomorrow yesterday week month morning evening"
)
CHINESE_WORDS = _words(
    "打印机 发票 退款 密码 登录 账户 订单 快递 付款 错误 更新 安装 屏幕 电池 充电器 数据线 保修 运费 退货 "
    "更换 订阅 账单 银行卡 转账 邮箱 地址 手机 号码 消息 通知 设置 资料 上传 下载 文件 备份 同步 服务器 "
    "网络 路由器 连接 无线 蓝牙 音箱 相机 照片 视频 麦克风 键盘 鼠标 显示器 笔记本 平板 驱动 软件 固件 "
    "许可证 激活码 优惠券 折扣 价格 税费 收据 余额 信用卡 取消 暂停 续费 升级 套餐 试用 功能 报表 导出 "
    "日历 会议 预约 客服 经理 团队 公司 门店 包裹 物流 单号 标签 海关 尺寸 颜色 型号 序列号 损坏 丢失 "
    "延迟 很慢 崩溃 卡住 重启 重置 解锁 锁定 过期 无效 失败 拒绝 处理中 已批准 已发货 已签收 紧急 问题 "
    "投诉 谢谢 帮忙 今天 明天 昨天 本周 本月 上午 晚上"
)
# Characters for made-up Chinese words (two characters each), after the real ones.
CHINESE_CHARACTERS = (
    "安百北贝本比边表别宾冰并波博部才参草层茶产长常场超车晨成城程池持充出初楚川传窗春词从村存达大代带单当"
    "道德灯等低底地点电店定东动度端短段队对多朵恩儿耳二发法反方房放飞分丰风封夫服福府负复富改干刚港高歌格"
    "各根工公功共古谷骨关观官光广归规国果海含寒汉行好合和河黑红后湖虎花华化画话环黄回会火货机鸡基吉极几季"
    "家佳加甲价假间坚建江将交角脚教接街节结金锦近进京经精景静九酒旧居菊局巨句卷军均开凯康科可克客空口库快"
)
FIRST_NAMES = _words(
    "Olivia Liam Emma Noah Amelia Oliver Ava Elijah Sophia James Isabella William Mia Benjamin Charlotte Lucas "
    "Harper Henry Evelyn Theodore Aoife Cian Niamh Oisin Saoirse Fionn Grace Jack Chloe Sean"
)
LAST_NAMES = _words(
    "Murphy Kelly Walsh Byrne Ryan OBrien Smith Jones Brown Taylor Wilson Davies Evans Thomas Roberts Johnson "
    "Chen Wang Li Zhang Liu Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu"
)
CHINESE_NAMES = _words("王芳 李娜 张伟 刘洋 陈静 杨磊 黄敏 赵强 吴霞 周杰 徐丽 孙浩 马超 朱婷 胡军 郭燕 林峰 何欣")
TAGS = [f"{word}-{kind}" for word in COMMON_WORDS[:20] for kind in ("vip", "followup")]
QUEUES = ("support", "billing", "technical", "live")


def _setup() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "servicedesk.settings.local"
    os.environ["DEBUG"] = "false"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    import django

    django.setup()


def _made_up_words(count: int, rng: random.Random) -> list[str]:
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(syllables) for _ in range(3)) + rng.choice("klmnrt"))
    return sorted(words)


def vocabulary(seed: int) -> tuple[list[str], list[str]]:
    """English words by rank (common ones first) and Chinese words by rank."""
    rng = random.Random(seed)
    made_up = _made_up_words(30_000, rng)
    rng.shuffle(made_up)
    pairs = [a + b for a in CHINESE_CHARACTERS for b in CHINESE_CHARACTERS if a != b]
    rng.shuffle(pairs)
    return list(COMMON_WORDS) + made_up, list(CHINESE_WORDS) + pairs[:8_000]


def _zipf_cumulative(size: int) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) for rank in range(size)))


class Texts:
    """Message texts and subjects drawn from the vocabularies by Zipf's law."""

    def __init__(self, seed: int) -> None:
        self.english, self.chinese = vocabulary(seed)
        self.english_weights = _zipf_cumulative(len(self.english))
        self.chinese_weights = _zipf_cumulative(len(self.chinese))
        self.rng = random.Random(seed + 1)

    def text(self, chinese: bool, low: int, high: int) -> str:
        rng = self.rng
        count = rng.randint(low, high)
        if chinese:
            words = rng.choices(self.chinese, cum_weights=self.chinese_weights, k=count)
            # Chinese runs of two or three words, separated as people write them.
            parts, at = [], 0
            while at < len(words):
                step = rng.randint(2, 3)
                parts.append("".join(words[at : at + step]))
                at += step
            return COMMA.join(parts) + "。"
        return " ".join(rng.choices(self.english, cum_weights=self.english_weights, k=count))


def _copy(cursor: Any, table: str, columns: tuple[str, ...], rows: Any) -> int:
    """COPY ``rows`` (tuples of str / None) into ``table``; no value may hold a tab, newline or backslash."""
    written = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer: list[str] = []
        for row in rows:
            buffer.append("\t".join("\\N" if value is None else value for value in row))
            written += 1
            if len(buffer) >= 5_000:
                copy.write("\n".join(buffer) + "\n")
                buffer.clear()
        if buffer:
            copy.write("\n".join(buffer) + "\n")
    return written


def _database_recreate() -> None:
    import psycopg

    url = urlsplit(os.environ["DATABASE_URL"])
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def _child_env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "servicedesk.settings.local",
        "DEBUG": "false",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }


def build(args: argparse.Namespace) -> dict[str, Any]:
    """Create and fill the database (run in a child process with Django set up)."""
    _setup()
    from django.contrib.auth.models import Group
    from django.db import connection

    from servicedesk.accounts.models import User
    from servicedesk.accounts.roles import roles_sync
    from servicedesk.tickets.models import Queue, Tag
    from servicedesk.tickets.services.tickets import reference_for

    timings: dict[str, float] = {}
    started = time.monotonic()
    roles_sync()
    queues = [Queue.objects.get_or_create(slug=slug, defaults={"name": slug.title()})[0] for slug in QUEUES]
    agent_group, manager_group = Group.objects.get(name="agent"), Group.objects.get(name="manager")
    agents = []
    for n in range(args.agents):
        user = User.objects.create_user(username=f"a{n}", email=f"a{n}@bench.example", external_id=f"a{n}")
        user.groups.add(agent_group)
        # a0 works in support and billing; the others in one queue each.
        for queue in queues[:2] if n == 0 else [queues[n % len(queues)]]:
            queue.members.add(user)
        agents.append(user.pk)
    manager = User.objects.create_user(username="manager", email="manager@bench.example", external_id="manager")
    manager.groups.add(manager_group)
    tags = Tag.objects.bulk_create([Tag(name=name) for name in TAGS])
    texts = Texts(args.seed)
    rng = random.Random(args.seed + 2)
    timings["setup"] = time.monotonic() - started

    with connection.cursor() as cursor:
        # The triggers that keep the search documents are off while loading; the documents are
        # written afterwards in batches, as the migration writes them for existing rows.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("DROP INDEX IF EXISTS tickets_search_document_gin")
        phase = time.monotonic()
        chinese_customers = set()

        def customers() -> Any:
            for pk in range(1, args.customers + 1):
                if pk % 10 == 3:
                    chinese_customers.add(pk)
                    name = f"{rng.choice(CHINESE_NAMES)}{pk}"
                else:
                    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                yield (str(pk), name, "zh-hans" if pk in chinese_customers else "en", "", "f", NOW.isoformat())

        _copy(
            cursor,
            "tickets_customer",
            ("id", "name", "language", "time_zone", "is_org_manager", "created_at"),
            customers(),
        )
        _copy(
            cursor,
            "tickets_identity",
            ("customer_id", "kind", "value", "is_bouncing", "bouncing_change", "created_at"),
            (
                (str(pk), "email", f"customer{pk}@mail{pk % 97}.example", "f", "", NOW.isoformat())
                for pk in range(1, args.customers + 1)
            ),
        )
        timings["customers"] = time.monotonic() - phase

        phase = time.monotonic()
        step = SPAN / args.tickets
        queue_ids = [queue.pk for queue in queues]
        channels = ("email", "email", "email", "email", "web", "web", "chat", "phone", "forum", "email")
        ticket_meta: list[tuple[int, bool, datetime]] = []

        def tickets() -> Any:
            for pk in range(1, args.tickets + 1):
                customer = rng.randint(1, args.customers)
                chinese = customer in chinese_customers
                created = NOW - SPAN + step * pk
                age = NOW - created
                updated = min(NOW, created + timedelta(minutes=rng.randint(5, 20_000)))
                if age > timedelta(days=14):
                    status = "closed" if rng.random() < 0.7 else "solved"
                else:
                    status = rng.choice(("new", "open", "open", "pending", "on_hold", "solved"))
                channel = channels[pk % len(channels)]
                share = rng.random()
                queue = (
                    queue_ids[3]
                    if channel in ("chat", "phone")
                    else queue_ids[0 if share < 0.6 else 1 if share < 0.8 else 2]
                )
                assignee = str(rng.choice(agents)) if rng.random() < 0.7 else None
                ticket_meta.append((customer, chinese, created))
                yield (
                    str(pk),
                    reference_for(pk),
                    texts.text(True, 2, 4) if chinese else texts.text(False, 3, 7),
                    channel,
                    "inbound",
                    status,
                    rng.choice(("low", "normal", "normal", "normal", "high", "urgent")),
                    str(customer),
                    str(queue),
                    assignee,
                    "zh-hans" if chinese else "en",
                    "f",
                    "f",
                    "1",
                    f"{rng.getrandbits(128):032x}",
                    created.isoformat(),
                    updated.isoformat(),
                )

        _copy(
            cursor,
            "tickets_ticket",
            (
                "id",
                "reference",
                "subject",
                "channel",
                "initiator",
                "status",
                "priority",
                "customer_id",
                "queue_id",
                "assignee_id",
                "language",
                "is_spam",
                "is_deleted",
                "version",
                "portal_key",
                "created_at",
                "updated_at",
            ),
            tickets(),
        )
        cursor.execute("SELECT setval(pg_get_serial_sequence('tickets_ticket', 'id'), %s)", [args.tickets])
        cursor.execute("SELECT setval(pg_get_serial_sequence('tickets_customer', 'id'), %s)", [args.customers])
        timings["tickets"] = time.monotonic() - phase

        phase = time.monotonic()
        per_ticket = args.messages / args.tickets

        def messages() -> Any:
            # Each ticket's messages: its share of the total (the rounding carried over), at least one.
            carried = 0.0
            for pk, (customer, chinese, created) in enumerate(ticket_meta, start=1):
                carried += per_ticket
                count = max(1, int(carried))
                carried -= count
                for n in range(count):
                    draw = rng.random()
                    if n == 0 or 0.12 <= draw < 0.5:
                        kind, author_customer, author_user = "public_enduser", str(customer), None
                    elif draw < 0.12:
                        kind, author_customer, author_user = "internal", None, str(rng.choice(agents))
                    else:
                        kind, author_customer, author_user = "public_agent", None, str(rng.choice(agents))
                    body = texts.text(chinese, 15, 45) if kind != "internal" else texts.text(chinese, 5, 20)
                    if rng.random() < 0.2:
                        body += f" order {rng.randrange(10_000_000, 100_000_000)}"
                    yield (
                        str(pk),
                        kind,
                        "email",
                        "",
                        author_customer,
                        author_user,
                        body,
                        "{}",
                        "",
                        "",
                        "[]",
                        "[]",
                        "f",
                        "",
                        "",
                        "0",
                        (created + timedelta(hours=n)).isoformat(),
                    )

        _copy(
            cursor,
            "tickets_message",
            (
                "ticket_id",
                "kind",
                "channel",
                "purpose",
                "author_customer_id",
                "author_user_id",
                "text",
                "facts",
                "display_text",
                "html",
                "recipients",
                "dropped_attachments",
                "quote_history",
                "delivery_status",
                "delivery_error",
                "delivery_attempts",
                "created_at",
            ),
            messages(),
        )
        timings["messages"] = time.monotonic() - phase

        phase = time.monotonic()
        tag_ids = ",".join(str(tag.pk) for tag in tags)
        # 30 % of the tickets carry one tag, one in ten of those a second one.
        cursor.execute(
            "INSERT INTO tickets_ticket_tags (ticket_id, tag_id) "
            f"SELECT g, (ARRAY[{tag_ids}])[1 + (g * 7) %% {len(tags)}] FROM generate_series(1, %s) g WHERE g %% 10 < 3 "
            f"UNION ALL SELECT g, (ARRAY[{tag_ids}])[1 + (g * 7 + 5) %% {len(tags)}] FROM generate_series(1, %s) g "
            "WHERE g %% 100 < 3",
            [args.tickets, args.tickets],
        )
        cursor.execute("SET session_replication_role = origin")
        timings["tags"] = time.monotonic() - phase
    connection.close()

    phase = time.monotonic()
    documents_backfill()
    timings["search_documents"] = time.monotonic() - phase
    with connection.cursor() as cursor:
        phase = time.monotonic()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        from importlib import import_module

        migration = import_module("servicedesk.tickets.migrations.0026_search_documents")
        cursor.execute(migration.INDEX)
        timings["gin_index"] = time.monotonic() - phase
    connection.close()
    phase = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    timings["vacuum_analyze"] = time.monotonic() - phase
    with connection.cursor() as cursor:
        sizes = {}
        for table in ("tickets_ticket", "tickets_message", "tickets_search_document"):
            cursor.execute(f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}")
            rows, size = cursor.fetchone()
            sizes[table] = {"rows": rows, "total_mib": round(size / 2**20)}
        cursor.execute("SELECT pg_relation_size('tickets_search_document_gin')")
        sizes["tickets_search_document_gin_mib"] = round(cursor.fetchone()[0] / 2**20)
    return {
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_seconds": round(time.monotonic() - started, 1),
        "sizes": sizes,
    }


def documents_backfill() -> None:
    """The migration's backfill of existing rows, its batches shared by two connections."""
    from importlib import import_module

    from django.db import connections

    migration = import_module("servicedesk.tickets.migrations.0026_search_documents")
    errors: list[BaseException] = []

    def worker(slot: int) -> None:
        from django.db import connection

        try:
            for table, statement in migration.BACKFILL.items():
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT min(id), max(id) FROM {table}")
                    low, high = cursor.fetchone()
                if low is None:
                    continue
                for n, start in enumerate(range(low, high + 1, migration.BATCH)):
                    if n % 2 == slot:
                        with connection.cursor() as cursor:
                            cursor.execute(statement, [start, start + migration.BATCH])
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# ------------------------------------------------------------------ the terms


def _count_matching(cursor: Any, term: str) -> tuple[int, int]:
    """Documents and tickets whose documents match ``term`` as the search reads it (notes included)."""
    from servicedesk.tickets.search import search_term_clean, websearch_text

    cursor.execute(
        "SELECT count(*), count(DISTINCT ticket_id) FROM tickets_search_document "
        "WHERE document @@ websearch_to_tsquery('english', %s)",
        [websearch_text(search_term_clean(term))],
    )
    documents, tickets = cursor.fetchone()
    return documents, tickets


def terms_choose(seed: int) -> dict[str, list[dict[str, Any]]]:
    """The measured terms by kind, each with how many documents and tickets its text matches."""
    from django.db import connection

    english, chinese = vocabulary(seed)
    rng = random.Random(seed + 3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM tickets_ticket")
        tickets = cursor.fetchone()[0]
        cursor.execute("SELECT max(id) FROM tickets_customer")
        customers = cursor.fetchone()[0]
        cursor.execute("SELECT min(id), max(id) FROM tickets_message")
        low, high = cursor.fetchone()
        # Order numbers and Chinese phrases as messages hold them.
        sample = [rng.randint(low, high) for _ in range(4_000)]
        cursor.execute("SELECT text FROM tickets_message WHERE id = ANY(%s)", [sample])
        texts = [row[0] for row in cursor.fetchall()]
        orders = [found.group(1) for text in texts if (found := re.search(r" order (\d{8})$", text))][:3]
        chinese_runs = [
            run for text in texts for run in text.rstrip("。").split(COMMA) if len(run) >= 4 and run.isalpha()
        ]
        chinese_long = [run[:6] if len(run) >= 6 else run for run in rng.sample(chinese_runs, 3)]
        # The most used tag, and one in the middle.
        cursor.execute(
            "SELECT g.name FROM tickets_tag g JOIN tickets_ticket_tags tt ON tt.tag_id = g.id "
            "GROUP BY g.name ORDER BY count(*) DESC, g.name"
        )
        used = [row[0] for row in cursor.fetchall()]
        tags_used = [used[0], used[len(used) // 2]] if used else []
        kinds: dict[str, list[str]] = {
            "rare word": [english[rank] for rank in rng.sample(range(24_000, 30_000), 3)],
            "middling word": [english[rank] for rank in rng.sample(range(2_500, 3_500), 3)],
            "common word": [english[rank] for rank in (2, 17, 60)],
            "two words": [
                f"{english[rng.randrange(2_500, 3_500)]} {english[rng.randrange(0, 40)]}",
                f"{english[rng.randrange(100, 300)]} {english[rng.randrange(100, 300)]}",
                f"{english[5]} {english[11]}",
            ],
            "phrase": [f'"{english[3]} {english[8]}"', f'"{english[40]} {english[90]}"'],
            "plural": ["printers", "invoices", "refunds"],
            "order number": orders,
            "reference": [f"SD-{rng.randint(1, tickets) + 1000}" for _ in range(3)],
            "address": [f"customer{pk}@mail{pk % 97}.example" for pk in rng.sample(range(1, customers + 1), 3)],
            "name": [f"{FIRST_NAMES[n]} {LAST_NAMES[n + 3]}" for n in (0, 7, 13)],
            "tag": tags_used,
            "Chinese word": [chinese[n] for n in (0, 9, 45)] + [chinese[rng.randrange(2_000, 4_000)]],
            "Chinese phrase": chinese_long,
            "no match": ["zzqxvbw", "qwxzptl"],
        }
        chosen: dict[str, list[dict[str, Any]]] = {}
        for kind, values in kinds.items():
            chosen[kind] = []
            for term in values:
                documents, matching = _count_matching(cursor, term)
                chosen[kind].append({"term": term, "documents": documents, "tickets": matching})
    rare = chosen["rare word"][0]["term"]
    common = chosen["common word"][0]["term"]
    chosen["word and status"] = [{"term": rare, "filter": "status=open"}, {"term": common, "filter": "status=open"}]
    chosen["word and queue"] = [{"term": common, "filter": "queue=billing"}, {"term": rare, "filter": "queue=support"}]
    return chosen


# ------------------------------------------------------------------ the requests

INBOX_VARIANTS = (
    "",
    "page=2",
    "status=open",
    "channel=chat",
    "priority=urgent",
    "tags=" + TAGS[0],
    "sort=-priority",
    "sort=subject",
    "sort=created",
    "assignee=me",
    "assignee=none",
    "mentioned=me",
)


def _p95(values: list[float]) -> float:
    """The ceil(0.95 n)-th smallest value."""
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(_p95(values), 1),
        "max_ms": round(max(values), 1),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every term and inbox page as the manager and as a0 (run in a child process)."""
    from servicedesk.serve import server_environment_set

    # The web server's settings (a pool of connections, no parallel workers), read by _setup.
    server_environment_set()
    # One user asks far more often than the API's limits let a person (600 a minute): measured,
    # not limited (with --requests 15 the API's answers were 429s).
    for limit in ("SD_API_THROTTLE_USER", "SD_API_THROTTLE_IP"):
        os.environ[limit] = "100000000/minute"
    _setup()
    import gc

    from django.conf import settings

    # As the web server runs (servicedesk/asgi.py): what is loaded moved out of the collector's
    # way, the young generation's threshold raised, so a request does not pay for a full
    # collection of everything the process loaded.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*settings.SERVICEDESK["GC_THRESHOLDS"])
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from servicedesk.accounts.models import User
    from servicedesk.tickets.models import Ticket

    started = time.monotonic()
    terms = terms_choose(args.seed)
    terms_seconds = time.monotonic() - started
    users = {"manager": User.objects.get(username="manager"), "agent": User.objects.get(username="a0")}
    agent_queues = set(users["agent"].queues.values_list("slug", flat=True))
    failures: list[str] = []
    results: dict[str, Any] = {"terms": terms, "terms_seconds": round(terms_seconds, 1), "search": {}, "inbox": {}}
    slowest: dict[str, tuple[float, str]] = {}

    def captured(client: Client, url: str, key: str) -> int:
        """One request under CaptureQueriesContext (not timed: the capture costs time of its own):
        its statements, the slowest kept by ``key``."""
        reset_queries()  # the log keeps 9,000 statements at most: counted from empty each time
        with CaptureQueriesContext(connection) as capture:
            response = client.get(url)
        if response.status_code != 200:
            failures.append(f"{url}: {response.status_code}")
        worst = max(((float(q["time"]) * 1000, q["sql"]) for q in capture.captured_queries), default=(0.0, ""))
        if worst[0] > slowest.get(key, (0.0, ""))[0]:
            slowest[key] = worst
        return len(capture)

    def timed(client: Client, url: str, times: list[float]) -> Any:
        """``--requests`` requests, their times added to ``times``; the last answer."""
        response = None
        for _ in range(args.requests):
            begun = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - begun) * 1000)
            if response.status_code != 200:
                failures.append(f"{url}: {response.status_code}")
                break
        return response

    pages = {"desk": ("/desk/", "q"), "api": ("/api/v1/tickets/", "search")}
    for role, user in users.items():
        client = Client()
        client.force_login(user)
        for page, (path, parameter) in pages.items():
            everything: list[float] = []
            per_kind: dict[str, Any] = {}
            for kind, entries in terms.items():
                timings: list[float] = []
                statements: set[int] = set()
                for entry in entries:
                    url = f"{path}?{parameter}={quote(entry['term'])}"
                    if entry.get("filter"):
                        url += "&" + entry["filter"]
                    statements.add(captured(client, url, f"{role} {page} {kind}"))
                    response = timed(client, url, timings)
                    if page == "api" and response.status_code == 200:
                        _check(response.json(), entry, role, users[role], failures)
                everything += timings
                per_kind[kind] = {**_summary(timings), "statements": sorted(statements)} if timings else {}
            results["search"][f"{role} {page}"] = {"overall": _summary(everything), "kinds": per_kind}
            inbox_times: list[float] = []
            inbox: dict[str, Any] = {}
            for variant in INBOX_VARIANTS:
                url = f"{path}?{variant}"
                timings = []
                count = captured(client, url, f"{role} {page} inbox {variant or 'first page'}")
                response = timed(client, url, timings)
                if page == "api" and role == "agent" and response.status_code == 200:
                    outside = [
                        row["reference"] for row in response.json()["results"] if row["queue"] not in agent_queues
                    ]
                    if outside:
                        failures.append(f"agent {url}: tickets outside the agent's queues: {outside[:5]}")
                inbox_times += timings
                inbox[variant or "first page"] = {**_summary(timings), "statements": [count]} if timings else {}
            results["inbox"][f"{role} {page}"] = {"overall": _summary(inbox_times), "variants": inbox}
    results["slowest_statements"] = {
        key: {"ms": round(ms, 1), "sql": sql[:600]}
        for key, (ms, sql) in sorted(slowest.items(), key=lambda kv: -kv[1][0])[:12]
    }
    results["explain"] = {}
    with connection.cursor() as cursor:
        for key, (_ms, sql) in sorted(slowest.items(), key=lambda kv: -kv[1][0])[:4]:
            if sql.lstrip().upper().startswith("SELECT"):
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                results["explain"][key] = [row[0] for row in cursor.fetchall()]
    results["tickets"] = Ticket.objects.count()
    results["failures"] = failures
    return results


def _check(body: dict[str, Any], entry: dict[str, Any], role: str, user: Any, failures: list[str]) -> None:
    """A narrow term's first API page: every document match listed (manager), nothing unexplained."""
    from django.db import connection
    from django.db.models import Q

    from servicedesk.tickets.models import Ticket
    from servicedesk.tickets.search import search_term_clean, websearch_text

    listed = [row["reference"] for row in body["results"]]
    if role == "agent":
        queues = set(user.queues.values_list("slug", flat=True))
        outside = [row["reference"] for row in body["results"] if row["queue"] not in queues]
        if outside:
            failures.append(f"agent ?search={entry['term']}: tickets outside the agent's queues: {outside[:5]}")
        return
    if entry.get("filter") or "tickets" not in entry or entry["tickets"] > len(listed) or entry["tickets"] > 200:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT t.reference FROM tickets_search_document d JOIN tickets_ticket t ON t.id = d.ticket_id "
            "WHERE d.document @@ websearch_to_tsquery('english', %s)",
            [websearch_text(search_term_clean(entry["term"]))],
        )
        expected = {row[0] for row in cursor.fetchall()}
    missing = expected - set(listed)
    if missing:
        failures.append(f"?search={entry['term']}: matching tickets not listed: {sorted(missing)[:5]}")
    term = entry["term"]
    explained = set(
        Ticket.objects.filter(reference__in=set(listed) - expected)
        .filter(Q(subject__icontains=term) | Q(customer__name__icontains=term) | Q(reference=term.upper()))
        .values_list("reference", flat=True)
    )
    unexplained = set(listed) - expected - explained
    if unexplained and "@" not in term:
        failures.append(f"?search={term}: tickets listed that do not match: {sorted(unexplained)[:5]}")


# ------------------------------------------------------------------ the run


def _child(phase: str, args: argparse.Namespace) -> dict[str, Any]:
    out = Path(tempfile.gettempdir()) / f"bench_search_{phase}_{os.getpid()}.json"
    command = [PYTHON, __file__, f"--{phase}-child", str(out), *sys.argv[1:]]
    subprocess.run(command, cwd=ROOT, env=_child_env(), check=True)
    result = json.loads(out.read_text())
    out.unlink()
    return result


def _markdown(report: dict[str, Any]) -> str:
    lines = ["| page, user | kind | p50 ms | p95 ms | max ms | statements |", "| --- | --- | --- | --- | --- | --- |"]

    def row(name: str, label: str, figures: dict[str, Any]) -> str:
        statements = ", ".join(map(str, figures.get("statements", [])))
        return f"| {name} | {label} | {figures['p50_ms']} | {figures['p95_ms']} | {figures['max_ms']} | {statements} |"

    measured = report["measure"]
    for section, heading, parts, prefix in (
        ("search", "**all searches**", "kinds", ""),
        ("inbox", "**inbox, no search**", "variants", "inbox "),
    ):
        for name, page in measured[section].items():
            lines.append(row(name, heading, page["overall"]))
            lines += [row(name, prefix + part, figures) for part, figures in page[parts].items() if figures]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--build-child", metavar="OUT")
    parser.add_argument("--measure-child", metavar="OUT")
    args, _rest = parser.parse_known_args()
    for phase, target in (("build", args.build_child), ("measure", args.measure_child)):
        if target:
            result = build(args) if phase == "build" else measure(args)
            Path(target).write_text(json.dumps(result, default=str))
            return 0
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("bench_search: DATABASE_URL must name a PostgreSQL database of the benchmark's own")
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "arguments": vars(args)}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    report["commit"] = commit.stdout.strip()
    if not args.skip_build:
        _database_recreate()
        began = time.monotonic()
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=_child_env(), check=True)
        report["migrate_seconds"] = round(time.monotonic() - began, 1)
        report["build"] = _child("build", args)
        print(json.dumps(report["build"], indent=1), flush=True)
    if not args.build_only:
        report["measure"] = _child("measure", args)
        print(_markdown(report), flush=True)
        for failure in report["measure"]["failures"]:
            print("FAILED:", failure)
    path = OUT / f"search-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=1, default=str, ensure_ascii=False))
    print("written", path)
    return 1 if report.get("measure", {}).get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
