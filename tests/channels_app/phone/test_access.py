"""The call access rule for many users at once (the pushes) is the rule of the pages, user by user."""

from __future__ import annotations

import pytest
from django.utils import timezone

from channels_app.phone.access import call_viewer_ids, calls_visible_to
from channels_app.phone.models import Call, CallState, PhoneLine
from servicedesk.accounts.models import User
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, UserFactory, ticket_make

pytestmark = pytest.mark.django_db


def test_the_pushes_check_agrees_with_calls_visible_to_for_every_user_and_call():
    support, billing, sales = QueueFactory(slug="support"), QueueFactory(slug="billing"), QueueFactory(slug="sales")
    with_queue = PhoneLine.objects.create(key="billing-line", name="Billing", number="+35311111111", queue=billing)
    without_queue = PhoneLine.objects.create(key="default", name="Default")  # the default queue's (support)
    users = {
        "support agent": AgentFactory(username="s", queues=[support]),
        "billing agent": AgentFactory(username="b", queues=[billing]),
        "sales agent": AgentFactory(username="l", queues=[sales]),
        "ringing sales agent": AgentFactory(username="r", queues=[sales]),
        "answering sales agent": AgentFactory(username="a", queues=[sales]),
        "agent of no queue": AgentFactory(username="n"),
        "manager": AgentFactory(username="m", role="manager"),
        "admin": AgentFactory(username="d", role="admin"),
        "superuser": UserFactory(username="su", is_superuser=True),
        "customer": UserFactory(username="c"),
    }
    customer = CustomerFactory()
    on_sales_ticket = ticket_make(customer=customer, queue=sales)
    deleted = ticket_make(customer=customer, queue=sales)
    deleted.is_deleted = True
    deleted.save(update_fields=["is_deleted"])
    now = timezone.now()

    def call(key: str, line: PhoneLine | None, **fields: object) -> Call:
        return Call.objects.create(line=line, call_id=key, direction="in", rang_at=now, **fields)

    calls = [
        call("queue-line", with_queue),
        call("default-line", without_queue),
        call(
            "rings-and-answered",
            with_queue,
            ringing=[users["ringing sales agent"].pk],
            agent=users["answering sales agent"],
            state=CallState.ANSWERED,
        ),
        call("manual-on-sales-ticket", None, ticket=on_sales_ticket),
        call("manual-on-deleted-ticket", None, ticket=deleted),
        call("default-line-on-sales-ticket", without_queue, ticket=on_sales_ticket),
    ]
    ids = [u.pk for u in users.values()]
    names = {u.pk: name for name, u in users.items()}
    for each in calls:
        each = Call.objects.select_related("line").get(pk=each.pk)
        expected = {pk for pk in ids if calls_visible_to(User.objects.get(pk=pk)).filter(pk=each.pk).exists()}
        assert {names[pk] for pk in call_viewer_ids(each, ids)} == {names[pk] for pk in expected}, each.call_id
    # The rule is not empty-handed: each kind of access shows in some call.
    manual = Call.objects.select_related("line").get(call_id="manual-on-sales-ticket")
    assert {names[pk] for pk in call_viewer_ids(manual, ids)} == {
        "sales agent",
        "ringing sales agent",
        "answering sales agent",
        "manager",
        "admin",
        "superuser",
    }
