"""``manage.py seed_demo``: a small, believable desk to click through.

It lives with the workspace because it sets up every part the workspace shows
(tickets, SLA, routing), which the domain itself may not import.

The tickets, messages, merges and ratings go through the history importer
(shared/HISTORY_FORMAT.md), so the demo data is made exactly like migrated
data and a second run changes nothing. The timeline covers the four weeks
before the first run; later runs reuse that anchor, so every record keeps its
instant and the importer recognises it.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from servicedesk.accounts.models import User
from servicedesk.kb.models import Article, ArticleStatus, Category
from servicedesk.kb.services import ArticleInput, article_save
from servicedesk.macros.models import CannedReply, Macro, Scope
from servicedesk.macros.services import CannedReplyInput, MacroInput, canned_reply_save, macro_save
from servicedesk.routing.models import QueueRouting
from servicedesk.routing.services import agent_profile_ensure, queue_routing_set
from servicedesk.tickets.importer import HistoryImporter
from servicedesk.tickets.importer.apply import message_external_id
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.models import Message, Queue, Ticket, Topic
from servicedesk.tickets.services.attachments import message_attachment_add
from servicedesk.tickets.services.sla import tickets_sla_backfill

# Fixed, documented demo sign-ins (README, "Try it"). Never use them outside a demo.
STAFF = (
    ("demo-agent", "agent@demo.example", "Dana Agent", "agent", "demo-agent-2026"),
    ("demo-manager", "manager@demo.example", "Morgan Manager", "manager", "demo-manager-2026"),
    ("demo-admin", "admin@demo.example", "Alex Admin", "admin", "demo-admin-2026"),
)
# The demo customer has no password: the help centre mails a sign-in link (var/mail/ by default).
CUSTOMER_SIGN_IN = "customer@demo.example"
QUEUES = (("support", "Support", "support@demo.example"), ("billing", "Billing", "billing@demo.example"))
TOPICS = (
    ("billing", "Billing", "账单", "billing"),
    ("technical", "Technical problem", "技术问题", "support"),
    ("account", "Account", "账户", "support"),
    ("other", "Other", "其他", "support"),
)
CUSTOMERS: tuple[tuple[str, str, list[str], list[str], str | None, str | None], ...] = (
    ("demo-c1", "Aoife Byrne", ["customer@demo.example"], ["+353861234567"], "Acme Ltd", "vip"),
    ("demo-c2", "Brian Walsh", ["brian.walsh@example.com"], [], "Acme Ltd", "vip"),
    ("demo-c3", "王芳", ["wang.fang@example.cn"], ["+8613812345678"], None, None),
    ("demo-c4", "Chloé Martin", ["chloe@example.fr"], [], "Bistro Martin", "standard"),
    ("demo-c5", "Dev Patel", ["dev.patel@example.co.uk"], ["+447700900123"], None, None),
    ("demo-c6", "Eva Novak", ["eva@example.cz"], [], None, None),
)
CHANNELS = ("email", "web", "chat", "phone", "forum")
SUBJECTS = {
    "billing": ("I was charged twice", "Invoice address is wrong", "Refund not received"),
    "technical": ("The app crashes on start", "Cannot upload a file", "Sync stopped working"),
    "account": ("Cannot sign in", "Please change my email address", "Close my account"),
    "other": ("Opening hours at Christmas?", "Feedback on your service", "Partnership question"),
}
TICKETS = 30
SCREENSHOT_NAME = "screenshot.png"
SPAN = timedelta(days=28)


class Command(BaseCommand):
    help = "Create demo queues, topics, staff, customers and tickets (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            self._configuration()
        importer = HistoryImporter(stderr=self.stderr)
        importer.import_lines("seed_demo", (json.dumps(record, ensure_ascii=False) for record in _records(_anchor())))
        if importer.stats.errors:
            raise CommandError(f"{importer.stats.errors} demo records could not be imported.")
        tickets_sla_backfill(at=timezone.now())
        self._screenshots()
        with transaction.atomic():
            self._sign_ins()
        with transaction.atomic():
            self._knowledge_base()
        with transaction.atomic():
            self._macros()
        self.stdout.write(importer.stats.summary())
        self.stdout.write("Demo sign-ins (desk: /desk/, customer portal: /help/tickets/):")
        for _id, email, _name, role, password in STAFF:
            self.stdout.write(f"  {role:<9} {email:<24} {password}")
        self.stdout.write(
            f"  {'customer':<9} {CUSTOMER_SIGN_IN:<24} no password: ask /help/sign-in/ for a link, it lands in the"
            " outgoing mail"
        )

    def _configuration(self) -> None:
        for slug, name, address in QUEUES:
            queue, _created = Queue.objects.get_or_create(slug=slug, defaults={"name": name})
            if queue.email_address != address:
                queue.email_address = address
                queue.save(update_fields=["email_address"])
        queues = {queue.slug: queue for queue in Queue.objects.filter(slug__in=[q[0] for q in QUEUES])}
        for slug, name, name_zh, queue_slug in TOPICS:
            Topic.objects.update_or_create(
                slug=slug,
                defaults={"name": name, "name_zh_hans": name_zh, "queue": queues[queue_slug]},
            )

    def _screenshots(self) -> None:
        """The customer replies that say "attached" carry the screenshot they promise."""
        for message in Message.objects.filter(
            external_id__startswith=message_external_id("demo-T"), external_id__endswith="-3"
        ).select_related("ticket"):
            message_attachment_add(
                message=message,
                upload=InboundAttachment(filename=SCREENSHOT_NAME, content_type="image/png", content=screenshot_png()),
            )

    def _knowledge_base(self) -> None:
        """A few published articles in English with their Chinese translations (kept as edited on later runs)."""
        author = User.objects.get(external_id="demo-agent")
        categories = {}
        for position, (slug, name, name_zh) in enumerate(KB_CATEGORIES):
            categories[slug], _created = Category.objects.get_or_create(
                slug=slug, defaults={"name": name, "name_zh_hans": name_zh, "position": position}
            )
        for slug, title, body, title_zh, body_zh in KB_ARTICLES:
            if Article.objects.filter(title=title, translation_of__isnull=True).exists():
                continue
            original = article_save(
                data=ArticleInput(
                    title=title, body=body, language="en", status=ArticleStatus.PUBLISHED, category=categories[slug]
                ),
                author=author,
            )
            article_save(
                data=ArticleInput(
                    title=title_zh,
                    body=body_zh,
                    language="zh-hans",
                    status=ArticleStatus.PUBLISHED,
                    category=categories[slug],
                    translation_of=original,
                ),
                author=author,
            )

    def _macros(self) -> None:
        """Shared macros and canned replies, with their Chinese texts (kept as edited on later runs)."""
        manager = User.objects.get(external_id="demo-manager")
        for name, actions in DEMO_MACROS:
            if not Macro.objects.filter(name=name, scope=Scope.GLOBAL).exists():
                macro_save(data=MacroInput(name=name, scope=Scope.GLOBAL, queue=None, actions=actions), user=manager)
        for name, text, text_zh in DEMO_CANNED_REPLIES:
            if not CannedReply.objects.filter(name=name, scope=Scope.GLOBAL).exists():
                canned_reply_save(
                    data=CannedReplyInput(
                        name=name, scope=Scope.GLOBAL, queue=None, text=text, translations={"zh-hans": text_zh}
                    ),
                    user=manager,
                )

    def _sign_ins(self) -> None:
        for external_id, _email, _name, role, password in STAFF:
            user = User.objects.get(external_id=external_id)
            user.set_password(password)
            user.is_staff = role == "admin"
            user.is_superuser = role == "admin"
            user.save(update_fields=["password", "is_staff", "is_superuser"])
        support = Queue.objects.get(slug="support")
        demo_agent = User.objects.get(external_id="demo-agent")
        support.members.add(demo_agent)
        # New support tickets go round robin to the agents online in it; kept as edited on later runs.
        agent_profile_ensure(user=demo_agent, availability="online")
        if not QueueRouting.objects.filter(queue=support).exists():
            queue_routing_set(queue=support, mode="round_robin")
        # Customers sign in by emailed link only: a password an earlier version gave the demo customer goes.
        for user in User.objects.filter(username=CUSTOMER_SIGN_IN):
            user.set_unusable_password()
            user.save(update_fields=["password"])


KB_CATEGORIES = (("accounts", "Accounts", "账户"), ("billing", "Billing", "账单"))
KB_ARTICLES = (
    (
        "accounts",
        "Reset your password",
        "1. Open **Sign in** and choose *Forgot password*.\n2. Enter your email address.\n"
        "3. Open the link we send you within 15 minutes.\n\nNo mail? Check your spam folder.",
        "重置密码",
        "1. 打开**登录**页面，选择*忘记密码*。\n2. 输入您的电子邮件地址。\n3. 在 15 分钟内打开我们发送的链接。\n\n没有收到邮件？请检查垃圾邮件文件夹。",  # noqa: RUF001
    ),
    (
        "billing",
        "I was charged twice",
        "A second charge is usually a card *authorisation* that disappears within 5 working days.\n\n"
        "If it is still there after that, [contact us](/help/contact/) with the date and amount.",
        "重复扣款",
        "第二笔扣款通常是银行卡的*预授权*，会在 5 个工作日内自动消失。\n\n如果之后仍然存在，请[联系我们](/help/contact/)并提供日期和金额。",  # noqa: RUF001
    ),
    (
        "accounts",
        "Upload a file that is too large",
        "Files up to 10 MB can be attached. Larger files: compress them, or share a link.",
        "上传过大的文件",
        "可以附加最大 10 MB 的文件。更大的文件请先压缩，或分享链接。",  # noqa: RUF001
    ),
)


DEMO_MACROS = (
    (
        "Ask for a screenshot",
        [
            {
                "type": "reply",
                "text": 'Hello {{ customer.first_name|default:"there" }}, could you send us a screenshot of what you '
                "see? Reply to this message with it attached.\n\nReference: {{ ticket.reference }}",
                "translations": {
                    "zh-hans": "您好，能否发送一张您看到的画面的截图？请回复此消息并附上截图。\n\n工单编号：{{ ticket.reference }}"  # noqa: RUF001
                },
            },
            {"type": "status", "status": "pending"},
        ],
    ),
    (
        "Escalate to billing",
        [
            {"type": "priority", "priority": "high"},
            {"type": "tags", "mode": "add", "tags": ["billing"]},
            {"type": "note", "text": "Escalated to billing: please check the payment records."},
        ],
    ),
)
DEMO_CANNED_REPLIES = (
    (
        "Refund on its way",
        'Hello {{ customer.first_name|default:"there" }}, the refund is on its way: it reaches your account '
        "within 5 working days.",
        "您好，退款已在处理中，将在 5 个工作日内到账。",  # noqa: RUF001
    ),
    (
        "Thanks for waiting",
        "Thank you for your patience. We are looking into it and will write again today.",
        "感谢您的耐心等待。我们正在处理，今天内会再次回复您。",  # noqa: RUF001
    ),
)


def _anchor() -> datetime:
    """The instant the demo timeline starts: kept from the first run."""
    first = Ticket.objects.filter(external_id="demo-T01").values_list("created_at", flat=True).first()
    if first is not None:
        return first - _offset(1)
    return (timezone.now() - SPAN).replace(minute=0, second=0, microsecond=0)


def _offset(number: int) -> timedelta:
    # Spread over the span, during working hours of the day.
    return timedelta(days=(number - 1) * 27 // TICKETS, hours=(number * 5) % 9, minutes=(number * 17) % 60)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _records(anchor: datetime) -> Iterator[dict[str, Any]]:
    weekdays = ("mon", "tue", "wed", "thu", "fri")
    yield {
        "kind": "calendar",
        "id": "demo-office",
        "timezone": "Europe/Dublin",
        "default": True,
        "hours": {day: [["09:00", "17:30"]] for day in weekdays},
    }
    yield {
        "kind": "sla_policy",
        "id": "demo-standard",
        "rank": 100,
        "calendar": "demo-office",
        "match": {},
        "targets": {
            "urgent": {"first_reply": 30, "resolution": 240, "hours": "calendar"},
            "high": {"first_reply": 60, "resolution": 480, "hours": "business"},
            "normal": {"first_reply": 240, "resolution": 1440, "hours": "business"},
            "low": {"first_reply": 480, "resolution": 2880, "hours": "business"},
        },
    }
    for external_id, email, name, role, _password in STAFF:
        yield {"kind": "agent", "id": external_id, "email": email, "name": name, "role": role}
    for external_id, name, emails, phones, org, tier in CUSTOMERS:
        record: dict[str, Any] = {
            "kind": "customer",
            "id": external_id,
            "name": name,
            "emails": emails,
            "phones": phones,
        }
        if org:
            record.update(organization=org, tier=tier)
        yield record
    topics = [topic[0] for topic in TOPICS]
    for number in range(1, TICKETS + 1):
        ticket = f"demo-T{number:02d}"
        customer = CUSTOMERS[(number - 1) % len(CUSTOMERS)][0]
        topic = topics[number % len(topics)]
        queue = "billing" if topic == "billing" else "support"
        created = anchor + _offset(number)
        channel = CHANNELS[number % len(CHANNELS)]
        agent = "demo-manager" if queue == "billing" else "demo-agent"
        yield {
            "kind": "ticket",
            "id": ticket,
            "at": _iso(created),
            "channel": channel,
            "initiator": "inbound",
            "customer": customer,
            "subject": SUBJECTS[topic][number % 3],
            "topic": topic,
            "priority": ("normal", "normal", "high", "low", "urgent")[number % 5],
            "queue": queue,
        }
        yield {
            "kind": "message",
            "id": f"{ticket}-1",
            "ticket": ticket,
            "at": _iso(created),
            "author": customer,
            "type": "public_enduser",
            "body": f"Hello, {SUBJECTS[topic][number % 3].lower()}. Can you help?",
        }
        if number % 6 == 0:
            continue  # still waiting for a first answer
        yield {"kind": "assign", "ticket": ticket, "at": _iso(created + timedelta(minutes=10)), "agent": agent}
        if number % 4 == 0:
            yield {
                "kind": "message",
                "id": f"{ticket}-n",
                "ticket": ticket,
                "at": _iso(created + timedelta(minutes=20)),
                "author": agent,
                "type": "internal",
                "body": "Checked the account; looks like a known issue.",
            }
        solved = number % 3 != 0 and number < TICKETS - 2
        yield {
            "kind": "message",
            "id": f"{ticket}-2",
            "ticket": ticket,
            "at": _iso(created + timedelta(minutes=35 + number)),
            "author": agent,
            "type": "public_agent",
            "status": "solved" if solved else "pending",
            "body": "Thanks for writing. This is sorted now." if solved else "Could you send us a screenshot?",
        }
        if solved and number % 2 == 1:
            yield {
                "kind": "rating",
                "ticket": ticket,
                "at": _iso(created + timedelta(hours=20)),
                "score": (5, 4, 5, 3, 5, 2)[number % 6],
                "comment": "Quick and friendly." if number % 4 == 1 else "",
            }
        elif not solved:
            yield {
                "kind": "message",
                "id": f"{ticket}-3",
                "ticket": ticket,
                "at": _iso(created + timedelta(hours=3)),
                "author": customer,
                "type": "public_enduser",
                "status": "open",
                "body": "Here it is, attached.",
            }
    # The same customer wrote twice about one problem: the second ticket joins the first.
    duplicate_of, duplicate = "demo-T07", "demo-T31"
    created = anchor + _offset(7) + timedelta(hours=1)
    customer = CUSTOMERS[(7 - 1) % len(CUSTOMERS)][0]
    yield {
        "kind": "ticket",
        "id": duplicate,
        "at": _iso(created),
        "channel": "email",
        "initiator": "inbound",
        "customer": customer,
        "subject": "Re: same problem as before",
        "topic": topics[7 % len(topics)],
        "queue": "support",
    }
    yield {
        "kind": "message",
        "id": f"{duplicate}-1",
        "ticket": duplicate,
        "at": _iso(created),
        "author": customer,
        "type": "public_enduser",
        "body": "Writing again about the same thing.",
    }
    yield {"kind": "merge", "ticket": duplicate, "into": duplicate_of, "at": _iso(created + timedelta(minutes=5))}


def screenshot_png(width: int = 64, height: int = 40) -> bytes:
    """A small real PNG (an error dialog in grey and red), made here so the demo needs no binary file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            title_bar = y < 8
            button = 40 <= x < 58 and 28 <= y < 35
            row += bytes((200, 40, 40) if title_bar else (90, 90, 200) if button else (235, 235, 235))
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
