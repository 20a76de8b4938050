"""The help centre's API: a signed-in customer's requests and actions, and survey answers (docs/help-centre.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Rating, Survey, Ticket
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.surveys import survey_token, surveys_send
from servicedesk.tickets.services.tickets import ticket_status_change
from tests.channels_app.web.helpers import sign_in
from tests.factories import CustomerFactory, ticket_make

pytestmark = pytest.mark.django_db

URL = "/api/v1/portal/tickets/"


@pytest.fixture
def alice(queue):
    return CustomerFactory(name="Alice Byrne", email="alice@example.com")


def test_nobody_and_a_desk_user_get_nothing(client, alice, queue, agent):
    ticket_make(customer=alice, queue=queue)
    assert client.get(URL).status_code in (401, 403)
    client.force_login(agent)
    assert client.get(URL).status_code in (401, 403)


def test_a_signed_in_customer_reads_their_requests_and_threads_only(client, alice, queue, agent):
    mine = ticket_make(customer=alice, queue=queue, channel="chat", subject="Chat about billing")
    ticket_make(customer=alice, queue=queue, is_spam=True)
    theirs = ticket_make(customer=CustomerFactory(), queue=queue)
    ticket_reply_create(ticket=mine, author=agent, text="Here is your answer.", deliver=False)
    ticket_note_create(ticket=mine, author=agent, text="Internal only")
    sign_in(client, alice)
    listed = client.get(URL).json()
    assert [row["reference"] for row in listed["results"]] == [mine.reference]
    assert listed["results"][0]["channel"] == "chat" and listed["results"][0]["own"] is True
    detail = client.get(f"{URL}{mine.reference}/").json()
    texts = [m["text"] for m in detail["messages"]]
    assert "Here is your answer." in texts and "Internal only" not in texts
    assert client.get(f"{URL}{theirs.reference}/").status_code == 404
    assert client.post(f"{URL}{theirs.reference}/status/", {"action": "solve"}).status_code == 404


def test_solving_and_reopening_need_the_csrf_token_and_keep_to_the_window(alice, queue):
    ticket = ticket_make(customer=alice, queue=queue)
    browser = Client(enforce_csrf_checks=True)
    sign_in(browser, alice)
    url = f"{URL}{ticket.reference}/status/"
    assert browser.post(url, {"action": "solve"}).status_code == 403  # no token: another site's request
    browser.get("/help/contact/")  # a page of the help centre sets the token
    token = browser.cookies["csrftoken"].value
    answer = browser.post(url, {"action": "solve"}, HTTP_X_CSRFTOKEN=token)
    assert answer.status_code == 200 and answer.json()["status"] == "solved"
    assert browser.post(url, {"action": "explode"}, HTTP_X_CSRFTOKEN=token).status_code == 400
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system())
    Ticket.objects.filter(pk=ticket.pk).update(solved_at=timezone.now() - timedelta(days=31))
    late = browser.post(url, {"action": "reopen"}, HTTP_X_CSRFTOKEN=token)
    assert late.status_code == 409 and "action" in late.json()


def test_a_survey_is_read_and_answered_by_its_token(client, alice, queue, django_capture_on_commit_callbacks):
    ticket = ticket_make(customer=alice, queue=queue)
    ticket_status_change(ticket=ticket, status="solved", actor=Actor.system())
    Ticket.objects.filter(pk=ticket.pk).update(solved_at=timezone.now() - timedelta(minutes=61))
    with django_capture_on_commit_callbacks(execute=True):
        surveys_send()
    survey = Survey.objects.get()
    url = f"/api/v1/surveys/{survey_token(survey)}/"
    assert client.get(url).json() == {
        "reference": ticket.reference,
        "subject": ticket.subject,
        "open": True,
        "score": None,
        "comment": "",
    }
    assert client.post(url, {"score": 9}, content_type="application/json").status_code == 400
    assert client.post(url, {"score": 4, "comment": "Good"}, content_type="application/json").json()["score"] == 4
    assert client.post(url, {"score": 2}, content_type="application/json").json()["score"] == 2
    assert list(Rating.objects.values_list("score", flat=True)) == [2]
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system())
    assert client.post(url, {"score": 5}, content_type="application/json").status_code == 409
    assert client.get("/api/v1/surveys/nonsense/").status_code == 404
