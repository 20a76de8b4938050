"""The pages fit the screen: on a phone (375 px) and a laptop (1366 px) nothing widens the page.

One ticket carries a 300-character word in its subject and a 500-character
signed URL in a reply, the kind of text that used to stretch the inbox and
the ticket pages to thousands of pixels. On each width the inbox, that
ticket, its customer page and the reports dashboard are opened, and the
document must be no wider than the window. On the phone the header keeps
Sign out and the language menu on screen and usable, the skip link is the
first thing the keyboard reaches, and a focused control shows an outline.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from servicedesk.tickets.access import portal_token_for
from servicedesk.tickets.events import Actor
from servicedesk.tickets.services.replies import ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_create
from tests.browser.test_reports import collect_errors, sign_in
from tests.factories import AgentFactory, CustomerFactory, QueueFactory
from tests.reports.delivery_helpers import calendar_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_WORD = "Supercalifragilistic" * 15  # 300 characters, no break opportunity
LONG_URL = "https://files.example.com/download/" + "x" * 430 + "?sig=" + "0123456789" * 3
WIDTHS = (375, 1366)


def overflow(page) -> tuple[int, int]:
    """(document width, window width) as the browser lays the page out."""
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def assert_fits(page, what: str) -> None:
    document_width, window_width = overflow(page)
    assert document_width <= window_width, f"{what}: the page is {document_width} px wide in a {window_width} px window"


@pytest.fixture
def long_ticket(db):
    calendar_make()
    queue = QueueFactory(slug="support", name="Support")
    ann = AgentFactory(username="ann", queues=[queue], display_name="Ann O'Neill")
    AgentFactory(username="max", role="manager", password="max-secret-42")
    customer = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    ticket = ticket_create(
        customer=customer,
        subject=f"Refund {LONG_WORD}",
        channel="email",
        actor=Actor.of_customer(customer),
        queue=queue,
        at=timezone.now() - timedelta(days=2),
    )
    ticket_reply_create(
        ticket=ticket, author=ann, text=f"Download it here: {LONG_URL}", actor=Actor.agent(ann), deliver=False
    )
    assert len(LONG_WORD) == 300 and len(LONG_URL) == 500
    return ticket


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_is_wider_than_the_window(browser, live_server, tmp_path, long_ticket, width):
    context = browser.new_context(locale="en-GB", viewport={"width": width, "height": 800})
    page = context.new_page()
    errors = collect_errors(page)
    sign_in(page, live_server.url, "max", "max-secret-42", then="/desk/")

    page.wait_for_selector("tr.ticket-row")
    assert_fits(page, "inbox")
    page.screenshot(path=str(tmp_path / f"inbox-{width}.png"), full_page=True)

    page.goto(f"{live_server.url}/desk/tickets/{long_ticket.reference}/")
    assert LONG_URL in page.inner_text(".thread")
    assert_fits(page, "ticket")
    # The long word wraps inside the title rather than running off the screen.
    title = page.locator("h1.ticket-title").bounding_box()
    assert title is not None and title["x"] + title["width"] <= width
    page.screenshot(path=str(tmp_path / f"ticket-{width}.png"), full_page=True)

    page.goto(f"{live_server.url}/desk/customers/{long_ticket.customer_id}/")
    assert_fits(page, "customer")

    page.goto(f"{live_server.url}/desk/reports/")
    page.wait_for_selector(".report-tiles", timeout=30_000)
    assert_fits(page, "reports dashboard")
    page.screenshot(path=str(tmp_path / f"reports-{width}.png"), full_page=True)

    page.goto(f"{live_server.url}/desk/reports/staffing/")
    page.wait_for_selector("table.staffing-grid")
    assert_fits(page, "staffing")
    page.screenshot(path=str(tmp_path / f"staffing-{width}.png"), full_page=True)

    page.goto(f"{live_server.url}/desk/chat/")
    page.wait_for_selector("#chat-console")
    assert_fits(page, "chat console")
    page.screenshot(path=str(tmp_path / f"chat-console-{width}.png"), full_page=True)

    portal = context.new_page()
    portal.goto(f"{live_server.url}/help/chat/")
    portal.wait_for_selector("servicedesk-chat", state="attached")
    assert_fits(portal, "chat page")
    portal.goto(f"{live_server.url}/help/tickets/{portal_token_for(long_ticket)}/")
    assert LONG_URL in portal.inner_text(".thread")
    assert_fits(portal, "portal ticket")
    portal.screenshot(path=str(tmp_path / f"portal-{width}.png"), full_page=True)
    assert errors == []
    context.close()


def test_on_a_phone_sign_out_and_the_language_menu_stay_usable(browser, live_server, tmp_path, long_ticket):
    context = browser.new_context(locale="en-GB", viewport={"width": 375, "height": 740})
    page = context.new_page()
    errors = collect_errors(page)
    sign_in(page, live_server.url, "max", "max-secret-42", then="/desk/")

    # The keyboard reaches the skip link first; it shows itself and a focus outline, and leads to the content.
    page.keyboard.press("Tab")
    skip = page.locator("a.skip-link")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert skip.inner_text() == "Skip to main content"
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    signout = page.locator(".desk-signout button[name=signout]")
    language = page.locator("#language-select")
    for control in (signout, language):
        assert control.is_visible()
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
        control.click(trial=True)  # visible, enabled, not covered: a click would land on it

    # The language menu works at this width: the page comes back in Chinese.
    language.select_option("zh-hans")
    page.wait_for_function("document.documentElement.lang === 'zh-hans'")
    assert page.locator("a.skip-link").inner_text() == "跳到主要内容"
    assert_fits(page, "inbox in Chinese")
    page.screenshot(path=str(tmp_path / "inbox-375-zh.png"), full_page=True)

    page.locator(".desk-signout button[name=signout]").click()
    page.wait_for_url(re.compile(r"/desk/login/"))
    assert errors == []
    context.close()
