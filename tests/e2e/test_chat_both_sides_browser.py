"""Both sides of a chat in Chromium: a visitor on another site's page, an agent in the console.

The shop's page (its own origin) embeds the widget with the one script tag.
In one browser context the visitor opens it and starts a chat; in a second
context the agent, signed in, sees the offer arrive in /desk/chat/ without a
reload, accepts it and replies; the visitor reads the reply, ends the chat and
rates it, and the rating is the ticket's.
"""

from __future__ import annotations

import pytest

from channels_app.chat.models import ChatConversation, ChatWidget
from servicedesk.tickets.models import Rating
from tests.browser.conftest import browser  # noqa: F401 (the fixture)
from tests.browser.test_reports import collect_errors
from tests.channels_app.chat.helpers import chat_agent
from tests.e2e.test_chat_console_browser import console_page
from tests.e2e.test_chat_widget_browser import desk, sites  # noqa: F401 (the fixtures)
from tests.factories import QueueFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_visitor_on_another_site_and_an_agent_in_the_console_chat_and_the_visitor_rates(
    browser,  # noqa: F811
    desk,  # noqa: F811
    sites,  # noqa: F811
):
    shop = sites["shop"].url
    queue = QueueFactory(slug="chat", name="Chat desk")
    ChatWidget.objects.create(key="default", name="Shop chat", queue=queue, allowed_origins=shop)
    ann = chat_agent(queue, username="ann")
    ann.display_name = "Ann Agent"
    ann.save(update_fields=["display_name"])

    # The agent's browser: the console, live.
    console = console_page(browser, desk.url, ann)
    console_errors = collect_errors(console)
    console.goto(f"{desk.url}/desk/chat/")
    console.wait_for_function("document.getElementById('chat-console').dataset.liveState === 'connected'")

    # The visitor's browser, on the shop's page.
    visitor_context = browser.new_context(locale="en-GB")
    page = visitor_context.new_page()
    visitor_errors = collect_errors(page)
    page.goto(shop + "/")
    page.locator("button.launcher").click()
    page.fill("input[name=name]", "Vera Visitor")
    page.fill("input[name=email]", "vera@example.com")
    page.fill("textarea[name=text]", "Where is my parcel?")
    page.click("form.prechat button[type=submit]")
    page.locator(".log li.visitor[data-state=delivered]:has-text('Where is my parcel?')").wait_for(timeout=15000)
    conversation = ChatConversation.objects.get()
    assert conversation.origin == shop

    # The offer appears in the open console; the agent accepts and answers.
    offer = console.locator(f".chat-waiting-item.chat-offer[data-conversation='{conversation.pk}']")
    offer.wait_for(timeout=20000)
    offer.locator("button", has_text="Accept").click()
    column = console.locator(f".chat-column[data-conversation='{conversation.pk}']")
    column.locator(".chat-line-visitor", has_text="Where is my parcel?").wait_for(timeout=15000)
    page.locator(".status:has-text('Ann Agent joined the chat.')").wait_for(timeout=15000)
    composer = column.locator("textarea[name=text]")
    composer.click()
    composer.type("It leaves our warehouse today.")
    composer.press("Enter")
    page.locator(".log li.agent:has-text('It leaves our warehouse today.')").wait_for(timeout=15000)

    # The visitor answers; the agent sees it live.
    page.fill(".compose textarea", "Thank you!")
    page.keyboard.press("Enter")
    column.locator(".chat-line-visitor", has_text="Thank you!").wait_for(timeout=15000)

    # The visitor ends the chat and rates it.
    page.click("text=End chat")
    page.locator(".status:has-text('The chat has ended.')").wait_for(timeout=10000)
    page.check("input[name=score][value='5']")
    page.fill("textarea[name=comment]", "Fast answer")
    page.click("form.rating button[type=submit]")
    page.locator("text=Thank you for your rating.").wait_for(timeout=10000)
    rating = Rating.objects.get(external_key=f"chat:{conversation.pk}")
    assert (rating.ticket_id, rating.score, rating.comment) == (conversation.ticket_id, 5, "Fast answer")
    conversation.refresh_from_db()
    assert conversation.status == "ended" and conversation.agent_id == ann.pk
    assert console_errors == [] and visitor_errors == []
    visitor_context.close()
    console.context.close()
