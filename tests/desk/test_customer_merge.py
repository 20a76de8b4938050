"""Customer records merged in the desk, with a preview, and undone later exactly (docs/help-centre.md)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from servicedesk.accounts.models import User
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import (
    Customer,
    CustomerEvent,
    CustomerMerge,
    Identity,
    Rating,
    Session,
    Survey,
    Ticket,
    TicketEvent,
)
from servicedesk.tickets.services.customers import customer_merge
from servicedesk.tickets.services.tickets import ticket_rate
from tests.factories import AgentFactory, CustomerFactory, OrganizationFactory, ticket_make

pytestmark = pytest.mark.django_db


def snapshot(*customers: Customer) -> dict:
    ids = [c.pk for c in customers]
    return {
        "identities": sorted(
            Identity.objects.filter(customer_id__in=ids).values_list("customer_id", "kind", "value", "is_bouncing")
        ),
        "tickets": sorted(Ticket.objects.filter(customer_id__in=ids).values_list("pk", "customer_id")),
        "sessions": sorted(Session.objects.filter(customer_id__in=ids).values_list("pk", "customer_id")),
        "surveys": sorted(Survey.objects.filter(customer_id__in=ids).values_list("pk", "customer_id")),
        "ratings": sorted(Rating.objects.filter(ticket__customer_id__in=ids).values_list("pk", "ticket_id", "score")),
        "merged_into": sorted(Customer.objects.filter(pk__in=ids).values_list("pk", "merged_into_id")),
        "users": sorted(Customer.objects.filter(pk__in=ids).values_list("pk", "user_id")),
    }


@pytest.fixture
def records(queue):
    org = OrganizationFactory(name="Acme")
    target = CustomerFactory(name="Aoife Byrne", email="aoife@acme.example", organization=org)
    source = CustomerFactory(name="Aoife Byrne", email="aoife.home@example.com", organization=org)
    Identity.objects.create(customer=source, kind="phone", value="+353861234567")
    Identity.objects.create(customer=target, kind="phone", value="+353861234567")  # a shared line
    Identity.objects.create(customer=source, kind="phone", value="+353870000001", is_bouncing=True)
    child = CustomerFactory(name="Old record")
    Customer.objects.filter(pk=child.pk).update(merged_into=source)
    user = User.objects.create_user(username="aoife-home")
    Customer.objects.filter(pk=source.pk).update(user=user)
    source.refresh_from_db()
    tickets = [ticket_make(customer=source, queue=queue, subject=f"Home {n}") for n in range(2)]
    ticket_make(customer=target, queue=queue, subject="Work")
    ticket_rate(ticket=tickets[0], score=2, actor=Actor.system())
    now = timezone.now()
    Session.objects.create(channel="chat", customer=source, ticket=tickets[1], requested_at=now)
    Survey.objects.create(
        ticket=tickets[0], customer=source, solved_at=now, sent_at=now, closes_at=now, channel="web", key="k" * 32
    )
    return source, target, child


def test_merging_in_the_desk_and_undoing_it_restores_everything_exactly(client, records, queue):
    source, target, child = records
    agent = AgentFactory(queues=[queue])
    before = snapshot(source, target, child)
    client.force_login(agent)

    preview = client.get(f"/desk/customers/{source.pk}/merge-into/{target.pk}/").content.decode()
    assert "2 tickets" in preview and "1 chat or call" in preview and "1 survey" in preview
    assert "aoife.home@example.com" in preview and "+353861234567: both records have it" in preview
    assert snapshot(source, target, child) == before  # the preview changes nothing

    assert client.post(f"/desk/customers/{source.pk}/merge-into/{target.pk}/").status_code == 302
    merged = snapshot(source, target, child)
    assert {c for _pk, c in merged["tickets"]} == {target.pk}
    assert {c for _pk, c in merged["sessions"]} == {target.pk} == {c for _pk, c in merged["surveys"]}
    assert ("merged_into" in merged) and (source.pk, target.pk) in merged["merged_into"]
    assert (child.pk, target.pk) in merged["merged_into"]
    page = client.get(f"/desk/customers/{target.pk}/").content.decode()
    assert "Undo this merge" in page

    # A ticket the customer opens after the merge stays with the record it was opened on.
    later = ticket_make(customer=target, queue=queue, subject="After the merge")
    merge = CustomerMerge.objects.get()
    assert client.post(f"/desk/customers/merges/{merge.pk}/undo/").status_code == 302
    after = snapshot(source, target, child)
    later_row = (later.pk, target.pk)
    assert later_row in after["tickets"]
    after["tickets"].remove(later_row)
    assert after == before
    kinds = sorted(CustomerEvent.objects.values_list("customer_id", "kind"))
    assert kinds == sorted(
        [(source.pk, "merged_into"), (target.pk, "merged_in"), (source.pk, "unmerged"), (target.pk, "unmerged_out")]
    )
    moves = TicketEvent.objects.filter(kind="customer", ticket__subject="Home 0").order_by("pk")
    assert [(e.before, e.after) for e in moves] == [
        ({"customer": source.pk}, {"customer": target.pk}),
        ({"customer": target.pk}, {"customer": source.pk}),
    ]
    # Undone once: again is refused, and nothing moves.
    client.post(f"/desk/customers/merges/{merge.pk}/undo/")
    assert CustomerEvent.objects.count() == 4


def test_an_undo_is_refused_once_the_records_merged_elsewhere(records, queue):
    from servicedesk.core.errors import ApplicationError
    from servicedesk.tickets.services.customers import customer_unmerge

    source, target, _child = records
    third = CustomerFactory()
    customer_merge(source=source, target=target, actor=Actor.system())
    customer_merge(source=target, target=third, actor=Actor.system())
    with pytest.raises(ApplicationError):
        customer_unmerge(merge=CustomerMerge.objects.get(source=source), actor=Actor.system())


def test_duplicates_are_suggested_and_merging_needs_both_records_in_sight(client, records, queue):
    source, target, _child = records
    agent = AgentFactory(queues=[queue])
    client.force_login(agent)
    page = client.get(f"/desk/customers/{target.pk}/").content.decode()
    assert f'data-customer="{source.pk}"' in page and "the same phone number" in page
    other_org = CustomerFactory(name="Aoife Byrne", organization=OrganizationFactory(name="Other"))
    ticket_make(customer=other_org, queue=queue)
    assert f'data-customer="{other_org.pk}"' not in client.get(f"/desk/customers/{target.pk}/").content.decode()
    # A record the agent cannot see (no ticket in their queues) cannot be merged or previewed.
    hidden = CustomerFactory()
    for method in ("get", "post"):
        response = getattr(client, method)(f"/desk/customers/{hidden.pk}/merge-into/{target.pk}/")
        assert response.status_code == 404
    assert not CustomerMerge.objects.exists()
    stranger = AgentFactory()
    customer_merge(source=source, target=target, actor=Actor.system())
    client.force_login(stranger)
    merge = CustomerMerge.objects.get()
    assert client.post(f"/desk/customers/merges/{merge.pk}/undo/").status_code == 404
    assert CustomerMerge.objects.get().undone_at is None
