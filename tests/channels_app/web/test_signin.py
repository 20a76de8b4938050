"""Customers sign in to the help centre by emailed link: no passwords, no enumeration, single use, separate sessions."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from channels_app.web.models import CustomerSession, SignInLink
from channels_app.web.signin import COOKIE, signin_expired_delete
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.services.customers import customer_merge
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.channels_app.web.helpers import sign_in
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^\s]+/help/sign-in/([A-Za-z0-9_-]+)/")


@pytest.fixture(autouse=True)
def _limits(settings):
    cache.clear()
    settings.SERVICEDESK = {**settings.SERVICEDESK, "HELP_SIGNIN_PER_ADDRESS": 3, "HELP_SIGNIN_PER_IP": 6}


def receive(email: str, subject: str = "Cannot log in", channel: str = "web") -> Ticket:
    return inbound_message_receive(
        inbound=InboundMessage(
            channel=channel,
            external_id=str(uuid.uuid4()),
            sender=SenderIdentity(kind="email", value=email, name="Alice Byrne"),
            subject=subject,
            text="Help, please.",
        )
    ).ticket


def ask(client, address: str, capture, **extra):  # type: ignore[no-untyped-def]
    with capture(execute=True):
        return client.post("/help/sign-in/", {"email": address}, **extra)


def token_of(message) -> str:  # type: ignore[no-untyped-def]
    found = LINK.search(message.body)
    assert found, message.body
    return found.group(1)


def test_a_known_address_gets_a_single_use_link_and_an_unknown_one_the_same_answer(
    client, django_capture_on_commit_callbacks
):
    receive("alice@example.com")
    mail.outbox.clear()
    known = ask(client, "Alice@Example.com", django_capture_on_commit_callbacks)
    unknown = ask(client, "nobody@example.com", django_capture_on_commit_callbacks)
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/help/sign-in/sent/"
    sent = client.get("/help/sign-in/sent/").content.decode()
    assert "If this address is one we know" in sent
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    token = token_of(mail.outbox[0])
    # Only the digest is stored.
    link = SignInLink.objects.get()
    assert token not in (link.digest, link.address) and len(link.digest) == 64
    assert link.expires_at - link.created_at == timedelta(minutes=15)


def test_opening_the_link_changes_nothing_and_its_button_signs_in_once(client, django_capture_on_commit_callbacks):
    ticket = receive("alice@example.com", subject="Printer on fire")
    receive("bob@example.com", subject="Bob's own request")
    mail.outbox.clear()
    ask(client, "alice@example.com", django_capture_on_commit_callbacks)
    url = f"/help/sign-in/{token_of(mail.outbox[0])}/"
    for _ in range(2):  # a mail scanner, then the customer
        page = client.get(url)
        assert page.status_code == 200 and "<button" in page.content.decode()
    assert not CustomerSession.objects.exists()
    signed = client.post(url)
    assert signed.status_code == 302 and signed["Location"] == "/help/tickets/"
    cookie = signed.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    portal = client.get("/help/tickets/").content.decode()
    assert ticket.reference in portal and "Printer on fire" in portal and "Bob" not in portal
    # Used: the link signs nobody in again, and says so.
    again = client.post(url)
    assert again.status_code == 400 and "expired or has been used" in again.content.decode()
    assert client.get(url).status_code == 400
    assert CustomerSession.objects.count() == 1


@pytest.mark.parametrize("token", ["x" * 43, "", "a" * 500, "../../admin", "%00"])
def test_a_tampered_link_is_a_clear_page_and_signs_nobody_in(client, token):
    receive("alice@example.com")
    response = client.post(f"/help/sign-in/{token}/") if token else client.get("/help/sign-in/x/")
    assert response.status_code in (400, 404)
    assert not CustomerSession.objects.exists() and COOKIE not in response.cookies


def test_an_expired_link_signs_nobody_in(client, django_capture_on_commit_callbacks):
    receive("alice@example.com")
    mail.outbox.clear()
    ask(client, "alice@example.com", django_capture_on_commit_callbacks)
    SignInLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(f"/help/sign-in/{token_of(mail.outbox[0])}/")
    assert response.status_code == 400 and not CustomerSession.objects.exists()


def test_a_bad_address_is_a_field_error(client):
    response = client.post("/help/sign-in/", {"email": "not an address"})
    assert response.status_code == 400
    assert "email" in response.context["form"].errors
    assert not SignInLink.objects.exists()


def test_links_per_address_stop_silently_and_an_ip_over_its_limit_gets_429(client, django_capture_on_commit_callbacks):
    receive("alice@example.com")
    mail.outbox.clear()
    answers = [ask(client, "alice@example.com", django_capture_on_commit_callbacks) for _ in range(5)]
    # The address's limit (3): the answer stays the same, no more mail goes.
    assert {a.status_code for a in answers} == {302}
    assert len(mail.outbox) == 3
    answers = [ask(client, "other@example.com", django_capture_on_commit_callbacks) for _ in range(2)]
    assert answers[-1].status_code == 429 and int(answers[-1]["Retry-After"]) >= 1
    assert "Too many sign-in links" in answers[-1].content.decode()
    # Another client address is not held by the first one's limit.
    other = ask(client, "alice@example.com", django_capture_on_commit_callbacks, REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 302


def test_the_link_mail_is_in_the_language_of_the_page_it_was_asked_from(client, django_capture_on_commit_callbacks):
    receive("wei@example.com")
    mail.outbox.clear()
    ask(client, "wei@example.com", django_capture_on_commit_callbacks, HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert mail.outbox[0].subject == "您的登录链接"
    assert "只能使用一次" in mail.outbox[0].body


def test_a_customer_is_nobody_in_the_desk_and_an_agent_nobody_in_the_help_centre(client, agent):
    ticket = receive("alice@example.com")
    sign_in(client, ticket.customer)
    desk = client.get("/desk/")
    assert desk.status_code == 302 and "/desk/login/" in desk["Location"]
    assert client.get("/api/v1/tickets/").status_code in (401, 403)
    # The agent signs in to the desk in the same browser: the help centre still shows the customer's requests only.
    client.force_login(agent)
    assert ticket.reference in client.get("/help/tickets/").content.decode()
    client.cookies.pop(COOKIE)
    assert ticket.reference not in client.get("/help/tickets/").content.decode()


def test_sign_out_ends_this_browser_and_sign_out_everywhere_every_browser():
    ticket = receive("alice@example.com")
    one, two, three = Client(), Client(), Client()
    for browser in (one, two, three):
        sign_in(browser, ticket.customer)
    assert CustomerSession.objects.count() == 3
    out = one.post("/help/sign-out/")
    assert out.status_code == 302 and out.cookies[COOKIE].value == ""
    assert ticket.reference not in one.get("/help/tickets/").content.decode()
    assert ticket.reference in two.get("/help/tickets/").content.decode()
    two.post("/help/sign-out/everywhere/")
    for browser in (two, three):
        assert ticket.reference not in browser.get("/help/tickets/").content.decode()
    assert not CustomerSession.objects.exists()
    # Signing out needs a POST (a link in a page cannot sign anyone out).
    assert one.get("/help/sign-out/").status_code == 405


def test_a_session_follows_its_customer_into_a_merge(client):
    alice = receive("alice@example.com", subject="First address").customer
    other = receive("alice.work@example.com", subject="Second address").customer
    sign_in(client, other)
    customer_merge(source=other, target=alice, actor=Actor.system())
    portal = client.get("/help/tickets/").content.decode()
    assert "First address" in portal and "Second address" in portal


def test_expired_links_and_sessions_are_forgotten(client):
    customer = CustomerFactory()
    sign_in(client, customer)
    assert signin_expired_delete(now=timezone.now() + timedelta(days=40)) == 2
    assert not SignInLink.objects.exists() and not CustomerSession.objects.exists()
    assert "Sign in" in client.get("/help/tickets/").content.decode()
