"""The portal link in acknowledgements is written out without reverse(): it must stay what reverse() gives."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.urls import get_script_prefix, resolve, reverse, set_script_prefix

from servicedesk.tickets.access import portal_token_for, ticket_for_portal_token
from servicedesk.tickets.services.acknowledgements import requests_url, ticket_portal_url
from tests.factories import ticket_make

pytestmark = pytest.mark.django_db


def reversed_url(ticket) -> str:
    return "https://help.example.com" + reverse("web:ticket", kwargs={"token": portal_token_for(ticket)})


@pytest.mark.parametrize("script_prefix", ["/", "/service-desk/"])
def test_the_link_is_the_one_reverse_gives(settings, script_prefix):
    """Under the site's root and behind a proxy that mounts the desk under a path (SCRIPT_NAME)."""
    settings.SITE_URL = "https://help.example.com"
    tickets = [ticket_make(subject=f"Ticket {n}") for n in range(3)]
    before = get_script_prefix()
    set_script_prefix(script_prefix)
    try:
        assert [ticket_portal_url(ticket) for ticket in tickets] == [reversed_url(ticket) for ticket in tickets]
    finally:
        set_script_prefix(before)


def test_the_link_opens_the_tickets_page_in_the_portal(settings):
    settings.SITE_URL = "https://help.example.com"
    ticket = ticket_make()

    match = resolve(urlsplit(ticket_portal_url(ticket)).path)

    assert match.view_name == "web:ticket"
    assert ticket_for_portal_token(match.kwargs["token"]) == ticket


@pytest.mark.parametrize("script_prefix", ["/", "/service-desk/"])
def test_the_sign_in_link_is_the_one_reverse_gives(settings, script_prefix):
    settings.SITE_URL = "https://help.example.com"
    before = get_script_prefix()
    set_script_prefix(script_prefix)
    try:
        assert requests_url() == "https://help.example.com" + reverse("web:sign_in")
    finally:
        set_script_prefix(before)
