"""What members and an agent click in the community (docs/community.md): a customer asks, another
customer replies (each new member's first post approved from the moderation queue), an agent replies
and accepts the answer, a third customer finds the answered question
among the contact form's suggestions; and a question nobody answers becomes a ticket when its target
passes (time moved by the test, not waited for)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from channels_app.forum.escalation import topics_escalate_due
from channels_app.forum.models import Category, Post, Topic
from servicedesk.sla.models import BusinessCalendar, OpeningWindow
from servicedesk.tickets.models import Ticket
from tests.factories import AgentFactory, CustomerFactory, QueueFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AGENT_PASSWORD = "dana-secret-42"


def customer_signs_in(browser, base: str, address: str, errors: list[str]):  # type: ignore[no-untyped-def]
    """A browser context of a customer signed in to the help centre by the mailed link."""
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/help/sign-in/")
    page.fill("input[name=email]", address)
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/help/sign-in/sent/"))
    link = re.search(r"http://\S+/help/sign-in/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link.replace("http://127.0.0.1:8000", base))
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/help/"))
    return context, page


def test_a_question_answered_by_members_and_staff_then_found_by_a_customer_about_to_write(
    browser, live_server, settings
):
    # As in the product: a new member's first post waits for a moderator.
    settings.SERVICEDESK = {**settings.SERVICEDESK, "FORUM_NEW_HELD_POSTS": 1}
    base = live_server.url
    queue = QueueFactory(slug="support", name="Support")
    calendar = BusinessCalendar.objects.create(slug="always", name="Always", time_zone="UTC")
    for weekday in range(7):
        OpeningWindow.objects.create(calendar=calendar, weekday=weekday, start_minute=0, end_minute=24 * 60)
    Category.objects.create(
        slug="questions", name="Questions", is_support=True, target_hours=24, calendar=calendar, queue=queue
    )
    agent = AgentFactory(username="dana", queues=[queue])
    agent.set_password(AGENT_PASSWORD)
    agent.save()
    for name, address in (("Alice Byrne", "alice@example.com"), ("Bob Stone", "bob@example.com")):
        CustomerFactory(name=name, email=address)
    CustomerFactory(name="Carol Diaz", email="carol@example.com")
    errors: list[str] = []

    # Alice asks: a new member's first post waits for a moderator.
    alice, page = customer_signs_in(browser, base, "alice@example.com", errors)
    page.goto(f"{base}/community/c/questions/new/")
    page.select_option("select[name=kind]", "question")
    page.fill("input[name=title]", "Scanner shows error E42 after the update")
    page.fill("textarea[name=body]", "Since Monday the scanner stops with **E42**.")
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/community/t/\d+-"))
    topic = Topic.objects.get(title="Scanner shows error E42 after the update")
    topic_address = page.url
    assert "E42" in page.inner_text("article.forum-post")
    assert "Waiting for approval" in page.inner_text("main")

    # The agent approves it from the moderation queue.
    desk = browser.new_context(locale="en-GB")
    agent_page = desk.new_page()
    agent_page.on("pageerror", lambda error: errors.append(str(error)))
    agent_page.goto(f"{base}/desk/login/?next=/desk/community/")
    agent_page.fill("#login-form input[name=username]", "dana")
    agent_page.fill("#login-form input[name=password]", AGENT_PASSWORD)
    agent_page.click("#login-form [name=signin]")
    agent_page.wait_for_url(re.compile(r"/desk/community/"))

    def approve(text: str) -> None:
        agent_page.goto(f"{base}/desk/community/")
        held = agent_page.locator("section.forum-held article", has_text=text)
        held.locator("button", has_text="Approve").click()
        agent_page.wait_for_load_state()
        assert agent_page.locator("section.forum-held article", has_text=text).count() == 0

    approve("Since Monday the scanner stops")
    assert Topic.objects.get(pk=topic.pk).state == "visible"

    # Bob replies; his first post waits too, and the agent approves it.
    bob, bob_page = customer_signs_in(browser, base, "bob@example.com", errors)
    bob_page.goto(topic_address)
    bob_page.fill("textarea[name=body]", "Same here; unplugging it did not help.")
    bob_page.click("text=Post reply")
    bob_page.wait_for_selector("text=Same here; unplugging it did not help.")
    approve("Same here; unplugging it did not help.")
    assert Post.objects.get(body_text__startswith="Same here").state == "visible"

    # The agent replies (a staff badge) and accepts that reply as the answer.
    agent_page.goto(topic_address)
    agent_page.fill("textarea[name=body]", "Reset the scanner's sensor: Settings, Maintenance, *Reset sensor*.")
    agent_page.click("text=Post reply")
    staff_reply = agent_page.locator("article.forum-post", has_text="Reset the scanner's sensor")
    staff_reply.wait_for()
    assert "Staff" in staff_reply.inner_text()
    staff_reply.locator("button", has_text="Accept as answer").click()
    agent_page.wait_for_selector("section.forum-answers article.forum-accepted")
    answer = Post.objects.get(topic=topic, accepted=True)
    assert answer.is_staff and "Reset the scanner" in answer.body_text

    # Alice sees the answer right under her question.
    page.goto(topic_address)
    assert "Reset the scanner's sensor" in page.inner_text("section.forum-answers")

    # Carol, about to write to support, finds the answered question among the suggestions.
    carol = browser.new_context(locale="en-GB")
    carol_page = carol.new_page()
    carol_page.on("pageerror", lambda error: errors.append(str(error)))
    carol_page.goto(f"{base}/help/contact/")
    carol_page.fill("input[name=subject]", "scanner error E42")
    suggestion = carol_page.locator(".kb-suggestions a", has_text="Scanner shows error E42")
    suggestion.wait_for()
    assert "answered in the community" in carol_page.inner_text(".kb-suggestions")
    with carol.expect_page() as opened:
        suggestion.click()
    opened.value.wait_for_load_state()
    assert "Reset the scanner's sensor" in opened.value.inner_text("section.forum-answers")
    assert not Ticket.objects.filter(channel="forum").exists()

    # A question nobody answers: when its target has passed, it becomes a ticket of its author's.
    page.goto(f"{base}/community/c/questions/new/")
    page.fill("input[name=title]", "Invoice shows the wrong address")
    page.fill("textarea[name=body]", "My invoice of November has my old address.")
    page.click("main form button[type=submit]")
    page.wait_for_url(re.compile(r"/community/t/\d+-"))
    waiting = Topic.objects.get(title="Invoice shows the wrong address")
    assert topics_escalate_due(now=waiting.created_at + timedelta(hours=23)) == 0
    assert topics_escalate_due(now=timezone.now() + timedelta(hours=25)) == 1
    ticket = Ticket.objects.get(channel="forum")
    assert ticket.customer.name == "Alice Byrne" and ticket.queue_id == queue.pk
    page.goto(f"{base}/help/tickets/")
    assert ticket.reference in page.inner_text("main")
    agent_page.goto(f"{base}/community/t/{waiting.pk}/")
    assert agent_page.locator("button", has_text="Open its ticket").count() == 1

    for context in (alice, bob, desk, carol):
        context.close()
    assert errors == []
