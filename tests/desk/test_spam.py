"""Marking a ticket as spam: from the ticket page and the API; the lists, the SLA and the reports leave it out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reports.services import report_compute
from servicedesk.sla.models import SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import TicketEvent, TicketTarget
from servicedesk.tickets.services.tickets import ticket_create, ticket_spam_set
from tests.api.conftest import client_for
from tests.desk.conftest import references
from tests.factories import ticket_make
from tests.reports.test_core_report import dublin  # noqa: F401

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 10, 20, 9, tzinfo=UTC)  # Monday, 10:00 in Dublin


def test_an_agent_marks_a_ticket_as_spam_and_back(agent_client, agent, queue, customer):
    spam = ticket_make(customer=customer, queue=queue, subject="Cheap watches")
    kept = ticket_make(customer=customer, queue=queue, subject="Invoice")

    page = agent_client.get(f"/desk/tickets/{spam.reference}/").content.decode()
    assert "Mark as spam" in page
    response = agent_client.post(f"/desk/tickets/{spam.reference}/spam/", {"spam": "1"})
    assert response.status_code == 302 and response["Location"] == "/desk/"
    spam.refresh_from_db()
    assert spam.is_spam
    event = TicketEvent.objects.get(ticket=spam, kind="spam")
    assert (event.before, event.after, event.source, event.actor_user) == (False, True, "ui", agent)
    # Gone from the inbox, listed in the spam view, still open to read.
    assert references(agent_client.get("/desk/")) == [kept.reference]
    spam_view = agent_client.get("/desk/?spam=1")
    assert references(spam_view) == [spam.reference] and "<h1>Spam</h1>" in spam_view.content.decode()
    page = agent_client.get(f"/desk/tickets/{spam.reference}/").content.decode()
    assert "Not spam" in page
    # The timeline shows the change in words, in the agent's language.
    zh = agent_client.get(f"/desk/tickets/{spam.reference}/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert '<span class="event-before">Not spam</span> &rarr;' in page
    assert '<span class="event-after">Spam</span>' in page
    assert '<span class="event-before">不是垃圾邮件</span>' in zh and '<span class="event-after">垃圾邮件</span>' in zh

    agent_client.post(f"/desk/tickets/{spam.reference}/spam/", {"spam": "0"})
    spam.refresh_from_db()
    assert not spam.is_spam
    assert sorted(references(agent_client.get("/desk/"))) == sorted([spam.reference, kept.reference])
    assert list(TicketEvent.objects.filter(ticket=spam, kind="spam").values_list("after", flat=True)) == [True, False]


def test_spam_is_marked_only_on_tickets_the_agent_sees_and_only_with_a_choice(agent_client, billing, customer, queue):
    other_queue = ticket_make(customer=customer, queue=billing)
    assert agent_client.post(f"/desk/tickets/{other_queue.reference}/spam/", {"spam": "1"}).status_code == 404
    own = ticket_make(customer=customer, queue=queue)
    response = agent_client.post(f"/desk/tickets/{own.reference}/spam/", {"spam": "maybe"}, follow=True)
    assert "Choose whether the ticket is spam." in response.content.decode()
    other_queue.refresh_from_db()
    own.refresh_from_db()
    assert not other_queue.is_spam and not own.is_spam


def test_the_api_marks_spam_for_agents_only(agent, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    response = client_for(agent).patch(f"/api/v1/tickets/{ticket.reference}/", {"is_spam": True}, format="json")
    assert response.status_code == 200 and response.json()["is_spam"] is True
    assert TicketEvent.objects.filter(ticket=ticket, kind="spam", source="api").count() == 1
    bad = client_for(agent).patch(f"/api/v1/tickets/{ticket.reference}/", {"is_spam": "perhaps"}, format="json")
    assert bad.status_code == 400 and "is_spam" in bad.json()


def test_spam_cancels_the_sla_targets_and_not_spam_resumes_them(dublin, queue, customer):  # noqa: F811
    policy = SlaPolicy.objects.create(slug="standard", name="Standard", rank=10, calendar=dublin, match={})
    SlaTarget.objects.create(
        policy=policy, priority="normal", first_reply_minutes=120, resolution_minutes=480, hours="business"
    )
    actor = Actor.of_customer(customer)
    ticket = ticket_create(customer=customer, subject="Hello", channel="email", actor=actor, queue=queue, at=T0)
    assert set(TicketTarget.objects.filter(ticket=ticket).values_list("state", flat=True)) == {"active"}

    ticket = ticket_spam_set(ticket=ticket, spam=True, actor=Actor.system(), at=T0 + timedelta(minutes=10))
    assert set(TicketTarget.objects.filter(ticket=ticket).values_list("state", flat=True)) == {"cancelled"}
    assert ticket.sla_due_at is None
    assert ticket_spam_set(ticket=ticket, spam=True, actor=Actor.system()) == ticket  # no change, no event
    assert TicketEvent.objects.filter(ticket=ticket, kind="spam").count() == 1

    ticket = ticket_spam_set(ticket=ticket, spam=False, actor=Actor.system(), at=T0 + timedelta(minutes=20))
    assert set(TicketTarget.objects.filter(ticket=ticket).values_list("state", flat=True)) == {"active"}
    assert ticket.sla_due_at is not None


def test_reports_count_a_ticket_by_whether_it_was_spam_at_as_of(dublin, queue, customer):  # noqa: F811
    actor = Actor.of_customer(customer)
    marked = ticket_create(customer=customer, subject="A", channel="email", actor=actor, queue=queue, at=T0)
    ticket_spam_set(ticket=marked, spam=True, actor=Actor.system(), at=T0 + timedelta(hours=2))
    # Created as spam (as intake or an import may), and found not to be spam later.
    cleared = ticket_create(
        customer=customer, subject="B", channel="email", actor=actor, queue=queue, at=T0, is_spam=True
    )
    ticket_spam_set(ticket=cleared, spam=False, actor=Actor.system(), at=T0 + timedelta(hours=4))
    ticket_create(customer=customer, subject="C", channel="email", actor=actor, queue=queue, at=T0, is_spam=True)

    def in_scope(as_of: datetime) -> int:
        return report_compute(start=date(2025, 10, 20), end=date(2025, 10, 21), as_of=as_of)["tickets"]["in_scope"]

    assert in_scope(T0 + timedelta(hours=1)) == 1  # A only: B and C are spam then
    assert in_scope(T0 + timedelta(hours=3)) == 0  # A marked as spam
    assert in_scope(T0 + timedelta(hours=5)) == 1  # B no longer spam
