"""Satisfaction surveys: once per solve after the delay, suppressed where they must be, answered by a button
(never by opening a link), replaced by a second answer, closed with the ticket or after 28 days."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Identity, Rating, Survey, Ticket, TicketEvent
from servicedesk.tickets.services.surveys import SURVEY_PATH, survey_mail, survey_token, survey_url, surveys_send
from servicedesk.tickets.services.tickets import ticket_merge, ticket_status_change
from tests.channels_app.web.helpers import sign_in
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://[^\s]+/help/surveys/([^/\s]+)/\?score=(\d)")


@pytest.fixture
def queue():
    return QueueFactory(slug="support")


@pytest.fixture
def agent(queue):
    return AgentFactory(queues=[queue], first_name="Dana", last_name="Agent")


def solved(customer=None, *, ago=timedelta(minutes=61), queue=None, agent=None, **kwargs):  # type: ignore[no-untyped-def]
    ticket = ticket_make(customer=customer or CustomerFactory(), queue=queue, assignee=agent, **kwargs)
    ticket_status_change(ticket=ticket, status="solved", actor=Actor.system())
    Ticket.objects.filter(pk=ticket.pk).update(solved_at=timezone.now() - ago)
    ticket.refresh_from_db()
    return ticket


def send(django_capture_on_commit_callbacks) -> int:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        return surveys_send()


def test_a_ticket_solved_an_hour_ago_is_surveyed_once_with_a_link_per_score(
    queue, agent, django_capture_on_commit_callbacks
):
    ticket = solved(queue=queue, agent=agent, channel="chat")
    solved(ago=timedelta(minutes=30), queue=queue)  # not yet
    assert send(django_capture_on_commit_callbacks) == 1
    survey = Survey.objects.get()
    assert (survey.ticket_id, survey.agent_id, survey.queue_id, survey.channel) == (
        ticket.pk,
        agent.pk,
        queue.pk,
        "chat",
    )
    assert survey.closes_at - survey.sent_at == timedelta(days=28)
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert ticket.reference in sent.subject
    assert [score for _token, score in LINK.findall(sent.body)] == ["1", "2", "3", "4", "5"]
    # Once for that solve, and once only by mail.
    assert send(django_capture_on_commit_callbacks) == 0
    assert survey_mail(survey_id=survey.pk) is False
    assert len(mail.outbox) == 1


def test_the_survey_mail_is_in_the_customers_language(queue, django_capture_on_commit_callbacks):
    customer = CustomerFactory(language="zh-hans")
    solved(customer, queue=queue)
    send(django_capture_on_commit_callbacks)
    assert "满意" in mail.outbox[0].body


def test_spam_deleted_merged_automatic_bouncing_and_lately_surveyed_are_not_surveyed(
    queue, agent, django_capture_on_commit_callbacks
):
    spam = solved(queue=queue)
    Ticket.objects.filter(pk=spam.pk).update(is_spam=True)
    deleted = solved(queue=queue)
    Ticket.objects.filter(pk=deleted.pk).update(is_deleted=True)
    merged = solved(queue=queue)
    ticket_merge(source=merged, target=ticket_make(customer=merged.customer, queue=queue), actor=Actor.agent(agent))
    automatic = solved(queue=queue)
    TicketEvent.objects.create(
        ticket=automatic, kind="message", at=automatic.created_at, after={"automatic": True}, source="intake"
    )
    bouncing = solved(queue=queue)
    Identity.objects.filter(customer=bouncing.customer).update(is_bouncing=True)
    regular = CustomerFactory()
    first = solved(regular, queue=queue, ago=timedelta(minutes=90))
    second = solved(regular, queue=queue)
    assert send(django_capture_on_commit_callbacks) == 1
    assert list(Survey.objects.values_list("ticket_id", flat=True)) == [first.pk]
    # A week later the customer may be asked again, for a new solve.
    Survey.objects.update(sent_at=timezone.now() - timedelta(days=8))
    assert send(django_capture_on_commit_callbacks) == 1
    assert Survey.objects.filter(ticket=second).exists()


def test_opening_a_score_link_records_nothing_and_the_button_records_the_rating(
    client, queue, django_capture_on_commit_callbacks
):
    ticket = solved(queue=queue)
    send(django_capture_on_commit_callbacks)
    token, _score = LINK.findall(mail.outbox[0].body)[1]
    url = f"/help/surveys/{token}/"
    page = client.get(url + "?score=2")
    assert page.status_code == 200 and page.context["form"].initial["score"] == 2
    assert not Rating.objects.exists()
    assert client.post(url, {"score": "2", "comment": "Slow <b>answer</b>"}).status_code == 200
    rating = Rating.objects.get()
    assert (rating.ticket_id, rating.score, rating.comment) == (ticket.pk, 2, "Slow <b>answer</b>")
    assert TicketEvent.objects.filter(ticket=ticket, kind="rating", source="portal").count() == 1
    # A second answer for the same solve replaces the first.
    client.post(url, {"score": "5", "comment": "Sorted after all"})
    assert list(Rating.objects.values_list("score", "comment")) == [(5, "Sorted after all")]
    assert Survey.objects.get().rating.score == 5


@pytest.mark.parametrize(
    "data", [{"score": "6"}, {"score": "0"}, {"score": "x"}, {}, {"score": "3", "comment": "x" * 2001}]
)
def test_a_bad_answer_is_400_with_the_field_and_records_nothing(
    client, queue, django_capture_on_commit_callbacks, data
):
    solved(queue=queue)
    send(django_capture_on_commit_callbacks)
    url = survey_url(Survey.objects.get()).replace("http://127.0.0.1:8000", "")
    response = client.post(url, data)
    assert response.status_code == 400 and response.context["form"].errors
    assert not Rating.objects.exists()


def test_a_survey_closes_with_its_ticket_and_after_28_days(client, queue, django_capture_on_commit_callbacks):
    ticket = solved(queue=queue)
    other = solved(queue=queue)
    send(django_capture_on_commit_callbacks)
    closed_url, late_url = (
        reverse("web:survey", args=[survey_token(Survey.objects.get(ticket=t))]) for t in (ticket, other)
    )
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system())
    Survey.objects.filter(ticket=other).update(closes_at=timezone.now() - timedelta(seconds=1))
    for url in (closed_url, late_url):
        assert "This survey has closed" in client.get(url + "?score=5").content.decode()
        assert "This survey has closed" in client.post(url, {"score": "5"}).content.decode()
    assert not Rating.objects.exists()


@pytest.mark.parametrize("token", ["nonsense", "eyJzIjoxfQ:tampered:sig"])
def test_a_tampered_survey_link_is_a_clear_page(client, token):
    response = client.get(f"/help/surveys/{token}/?score=5")
    assert response.status_code == 404 and "not valid" in response.content.decode()


def test_a_new_key_revokes_the_links_sent(client, queue, django_capture_on_commit_callbacks):
    solved(queue=queue)
    send(django_capture_on_commit_callbacks)
    survey = Survey.objects.get()
    url = reverse("web:survey", args=[survey_token(survey)])
    Survey.objects.update(key="0" * 32)
    assert client.post(url, {"score": "5"}).status_code == 404
    assert not Rating.objects.exists()


def test_agents_see_the_rating_on_the_ticket_page_and_in_the_api(
    client, queue, agent, django_capture_on_commit_callbacks
):
    ticket = solved(queue=queue, agent=agent)
    client.force_login(agent)
    assert client.get(f"/api/v1/tickets/{ticket.reference}/").json()["satisfaction"] is None
    send(django_capture_on_commit_callbacks)
    survey = Survey.objects.get()
    client.post(reverse("web:survey", args=[survey_token(survey)]), {"score": "4", "comment": "Quick & kind"})
    page = client.get(f"/desk/tickets/{ticket.reference}/").content.decode()
    assert "4 of 5" in page and "Quick &amp; kind" in page
    satisfaction = client.get(f"/api/v1/tickets/{ticket.reference}/").json()["satisfaction"]
    assert (satisfaction["score"], satisfaction["comment"]) == (4, "Quick & kind") and satisfaction["at"]


def test_the_portal_offers_the_open_survey_of_a_solved_request(client, queue, django_capture_on_commit_callbacks):
    ticket = solved(queue=queue)
    send(django_capture_on_commit_callbacks)
    sign_in(client, ticket.customer)
    page = client.get(f"/help/requests/{ticket.reference}/").content.decode()
    assert "How did we do?" in page and len(re.findall(r'href="/help/surveys/[^"]+\?score=\d"', page)) == 5


def test_the_survey_path_is_the_one_reverse_gives():
    assert "/" + SURVEY_PATH.format(token="abc") == reverse("web:survey", args=["abc"])
