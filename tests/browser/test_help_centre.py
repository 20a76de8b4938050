"""What a customer clicks in the help centre: signing in from the mailed link, their requests from three
channels, rating a solved one from the survey mail, and a question on the contact form that a suggested
article answers (docs/help-centre.md)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from servicedesk.kb.models import ArticleStatus, DeflectionEvent
from servicedesk.kb.services import ArticleInput, article_save
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Rating, Ticket
from servicedesk.tickets.services.surveys import surveys_send
from servicedesk.tickets.services.tickets import ticket_status_change
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_customer_signs_in_rates_a_solved_request_and_finds_an_answer_before_writing(browser, live_server, tmp_path):
    queue = QueueFactory(slug="support", name="Support")
    agent = AgentFactory(queues=[queue])
    alice = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    tickets = {
        channel: ticket_make(customer=alice, queue=queue, channel=channel, subject=f"About my {channel} contact")
        for channel in ("email", "chat", "phone")
    }
    solved = tickets["email"]
    ticket_status_change(ticket=solved, status="solved", actor=Actor.agent(agent))
    Ticket.objects.filter(pk=solved.pk).update(solved_at=timezone.now() - timedelta(minutes=61))
    article = article_save(
        data=ArticleInput(
            title="Printer on fire",
            body="Unplug the printer at once and keep clear. **Never** use water.",
            status=ArticleStatus.PUBLISHED,
        ),
        author=agent,
    )
    errors: list[str] = []
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))

    # Signing in: the address, then the link from the mail, then the button.
    page.goto(f"{live_server.url}/help/tickets/")
    page.click("main a.button")
    page.fill("input[name=email]", "alice@example.com")
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/help/sign-in/sent/"))
    link = re.search(r"http://\S+/help/sign-in/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link.replace("http://127.0.0.1:8000", live_server.url))
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/help/tickets/$"))
    listed = page.inner_text("table.list")
    for ticket in tickets.values():
        assert ticket.reference in listed
    for channel in ("Email", "Chat", "Phone"):
        assert channel in listed
    page.screenshot(path=str(tmp_path / "requests.png"), full_page=True)

    # The survey mail of the solved request: a score link, a comment, the button.
    mail.outbox.clear()
    surveys_send()
    survey_mail = mail.outbox[-1]
    four = re.search(r"http://\S+/help/surveys/\S+/\?score=4", survey_mail.body).group(0)
    page.goto(four.replace("http://127.0.0.1:8000", live_server.url))
    assert page.is_checked("input[name=score][value='4']")
    assert not Rating.objects.exists()  # opening the link recorded nothing
    page.check("input[name=score][value='5']")
    page.fill("textarea[name=comment]", "Quick and friendly.")
    page.click("main form button[type=submit]")
    page.wait_for_selector("text=Your answer was recorded")
    rating = Rating.objects.get()
    assert (rating.ticket_id, rating.score, rating.comment) == (solved.pk, 5, "Quick and friendly.")

    # A question on the contact form: a suggested article answers it, and the customer leaves.
    page.goto(f"{live_server.url}/help/contact/")
    page.fill("input[name=subject]", "my printer is on fire")
    suggestion = page.locator(".kb-suggestions a", has_text="Printer on fire")
    suggestion.wait_for()
    with context.expect_page() as opened:
        suggestion.click()
    article_page = opened.value
    article_page.wait_for_load_state()
    assert "Unplug the printer" in article_page.inner_text("article")
    article_page.screenshot(path=str(tmp_path / "article.png"), full_page=True)
    article_page.close()
    context.close()

    kinds = sorted(DeflectionEvent.objects.values_list("kind", flat=True))
    assert kinds == ["opened", "shown"]
    assert DeflectionEvent.objects.get(kind="opened").article_id == article.pk
    assert not Ticket.objects.filter(subject="my printer is on fire").exists()
    assert errors == []
