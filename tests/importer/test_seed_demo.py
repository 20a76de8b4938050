import io

import pytest
from django.contrib.auth import authenticate
from django.core import mail
from django.core.management import call_command

from servicedesk.accounts.models import User
from servicedesk.tickets.models import (
    Attachment,
    Customer,
    Message,
    Queue,
    Rating,
    Ticket,
    TicketEvent,
    TicketTarget,
    Topic,
)

pytestmark = pytest.mark.django_db

LOGINS = [
    "  agent     agent@demo.example       demo-agent-2026",
    "  manager   manager@demo.example     demo-manager-2026",
    "  admin     admin@demo.example       demo-admin-2026",
    "  customer  customer@demo.example    no password: ask /help/sign-in/ for a link, it lands in the outgoing mail",
]


def seed() -> list[str]:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=io.StringIO())
    return out.getvalue().splitlines()


def snapshot() -> dict[str, int]:
    models = (User, Customer, Queue, Topic, Ticket, Message, Rating)
    counts = {model.__name__: model.objects.count() for model in models}
    # SLA events depend on the hour the demo is seeded (business hours); counted apart.
    counts["TicketEvent"] = TicketEvent.objects.exclude(kind__startswith="sla_").count()
    counts["TicketTarget"] = TicketTarget.objects.count()
    return counts


def test_seed_demo_twice_without_duplicates():
    first = seed()
    counts = snapshot()
    second = seed()
    assert snapshot() == counts
    assert counts == {
        "User": 3,
        "Customer": 6,
        "Queue": 2,
        "Topic": 4,
        "Ticket": 31,
        "Message": 68,
        "TicketEvent": 168,
        "Rating": 9,
        "TicketTarget": 2 * Ticket.objects.filter(status__in=("new", "open", "pending", "on_hold")).count(),
    }
    assert counts["TicketTarget"] > 0
    assert first[0].startswith("145 records read, 145 applied, 0 skipped as already imported, 0 errors")
    assert second[0].startswith("145 records read, 0 applied, 145 skipped as already imported, 0 errors")
    assert first[1:] == second[1:] == ["Demo sign-ins (desk: /desk/, customer portal: /help/tickets/):", *LOGINS]
    assert mail.outbox == []


def test_seed_demo_logins_and_configuration():
    seed()
    for email, password, role in (
        ("agent@demo.example", "demo-agent-2026", "agent"),
        ("manager@demo.example", "demo-manager-2026", "manager"),
        ("admin@demo.example", "demo-admin-2026", "admin"),
    ):
        user = authenticate(username=email, password=password)
        assert user is not None
        assert list(user.groups.values_list("name", flat=True)) == [role]
    agent = User.objects.get(username="agent@demo.example")
    assert list(agent.queues.values_list("slug", flat=True)) == ["support"]
    # The demo customer signs in by emailed link, with no password (tests/channels_app/web/test_signin.py).
    assert not User.objects.filter(username="customer@demo.example").exists()
    assert Customer.objects.filter(external_id="demo-c1", identities__value="customer@demo.example").exists()
    assert sorted(Queue.objects.values_list("slug", "email_address")) == [
        ("billing", "billing@demo.example"),
        ("support", "support@demo.example"),
    ]
    assert sorted(Topic.objects.values_list("slug", "name_zh_hans", "queue__slug")) == [
        ("account", "账户", "support"),
        ("billing", "账单", "billing"),
        ("other", "其他", "support"),
        ("technical", "技术问题", "support"),
    ]
    merged = Ticket.objects.get(external_id="demo-T31")
    assert (merged.status, merged.merged_into.external_id) == ("closed", "demo-T07")
    assert Message.objects.filter(purpose="acknowledgement").count() == 0


def test_the_replies_that_say_attached_carry_a_real_screenshot():
    seed()
    seed()

    promised = Message.objects.filter(text="Here it is, attached.").order_by("pk")
    assert promised.count() > 0
    for message in promised:
        attachments = list(message.attachments.all())
        assert [(a.filename, a.content_type) for a in attachments] == [("screenshot.png", "image/png")]
        with attachments[0].file.open("rb") as handle:
            content = handle.read()
        assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) == attachments[0].size
    assert Attachment.objects.count() == promised.count()


def test_the_demo_has_shared_macros_and_canned_replies_an_agent_can_use():
    from servicedesk.macros.access import canned_replies_visible_to, macros_visible_to
    from servicedesk.macros.models import CannedReply, Macro
    from servicedesk.macros.services import canned_reply_render, macro_preview
    from servicedesk.tickets.events import Actor

    seed()
    seed()

    agent = User.objects.get(username="agent@demo.example")
    assert sorted(macros_visible_to(agent).values_list("name", "scope")) == [
        ("Ask for a screenshot", "global"),
        ("Escalate to billing", "global"),
    ]
    assert sorted(canned_replies_visible_to(agent).values_list("name", flat=True)) == [
        "Refund on its way",
        "Thanks for waiting",
    ]
    assert Macro.objects.count() == 2 and CannedReply.objects.count() == 2
    ticket = Ticket.objects.filter(queue__slug="support", status__in=("new", "open")).order_by("pk").first()
    first_name = ticket.customer.name.split()[0]
    rendered = canned_reply_render(canned=CannedReply.objects.get(name="Refund on its way"), ticket=ticket, user=agent)
    if rendered.language == "zh-hans":
        assert rendered.text == "您好，退款已在处理中，将在 5 个工作日内到账。"  # noqa: RUF001
    else:
        assert rendered.text.startswith(f"Hello {first_name}, the refund is on its way")
    preview = macro_preview(
        macro=Macro.objects.get(name="Ask for a screenshot"), ticket=ticket, actor=Actor.agent(agent)
    )
    assert preview.refused is None
    assert ticket.reference in preview.steps[0].text
    assert [step.kind for step in preview.steps] == ["reply", "status"]
