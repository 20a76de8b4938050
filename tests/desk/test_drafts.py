"""Reply drafts: saved per agent, ticket and kind, shown only to their agent, on every path."""

import pytest
from django.core import mail

from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Message, ReplyDraft
from servicedesk.tickets.services.drafts import DRAFT_MAX_LENGTH, reply_draft_save
from servicedesk.tickets.services.intake import inbound_message_receive
from tests.factories import AgentFactory, QueueFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def email_ticket(queue, customer):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<d1@example.com>",
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            subject="Printer on fire",
            text="Smoke is coming out of the printer.",
            queue="support",
        )
    ).ticket


@pytest.fixture
def colleague(queue):
    return AgentFactory(username="carol", display_name="Carol Agent", queues=[queue])


def save_url(ticket):
    return f"/desk/tickets/{ticket.reference}/draft/"


def test_a_draft_is_saved_per_agent_ticket_and_kind(agent_client, agent, email_ticket, queue, customer):
    other = ticket_make(queue=queue, customer=customer, subject="Second")

    first = agent_client.post(save_url(email_ticket), {"kind": "reply", "text": "Dear Alice,"})
    second = agent_client.post(save_url(email_ticket), {"kind": "reply", "text": "Dear Alice, unplug it."})
    note = agent_client.post(save_url(email_ticket), {"kind": "note", "text": "Fire brigade?"})
    elsewhere = agent_client.post(save_url(other), {"kind": "reply", "text": "Another one"})

    assert [r.status_code for r in (first, second, note, elsewhere)] == [200, 200, 200, 200]
    body = second.json()
    assert body["saved"] is True
    assert body["label"].startswith("Draft saved ")
    assert len(body["label"]) == len("Draft saved HH:MM")
    assert sorted(ReplyDraft.objects.values_list("ticket__subject", "kind", "text")) == [
        ("Printer on fire", "note", "Fire brigade?"),
        ("Printer on fire", "reply", "Dear Alice, unplug it."),
        ("Second", "reply", "Another one"),
    ]


def test_the_page_renders_the_draft_into_the_textarea(agent_client, email_ticket):
    agent_client.post(save_url(email_ticket), {"kind": "reply", "text": "Half <b>written</b>"})

    page = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()

    assert ">\nHalf &lt;b&gt;written&lt;/b&gt;</textarea>" in page
    assert 'id="draft-status" aria-live="polite">Draft saved ' in page


def test_a_note_draft_is_shown_with_the_note_kind_chosen(agent_client, email_ticket):
    agent_client.post(save_url(email_ticket), {"kind": "note", "text": "Internal only"})

    page = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()

    assert ">\nInternal only</textarea>" in page
    assert 'value="note" id="reply_kind_1" checked' in page or 'value="note" checked' in page.replace(
        ' id="reply_kind_1"', ""
    )


def test_another_agents_draft_is_never_shown(client, agent, colleague, email_ticket):
    reply_draft_save(agent=colleague, ticket=email_ticket, kind="reply", text="Carol's secret words")
    client.force_login(agent)

    page = client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()

    assert "Carol&#x27;s secret words" not in page and "Carol's secret words" not in page
    assert '<script id="reply-drafts" type="application/json">{}</script>' in page


def test_each_agent_keeps_their_own_draft(client, agent, colleague, email_ticket):
    client.force_login(agent)
    client.post(save_url(email_ticket), {"kind": "reply", "text": "Mine"})
    client.force_login(colleague)
    client.post(save_url(email_ticket), {"kind": "reply", "text": "Carol's"})

    assert sorted(ReplyDraft.objects.values_list("agent__username", "text")) == [
        (agent.username, "Mine"),
        ("carol", "Carol's"),
    ]
    page = client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()
    assert ">\nCarol&#x27;s</textarea>" in page
    assert ">\nMine</textarea>" not in page


def test_tickets_the_agent_cannot_see_answer_404_on_every_path(client, customer):
    billing = QueueFactory(slug="billing", name="Billing")
    hidden = ticket_make(queue=billing, customer=customer, subject="Invoice")
    outsider = AgentFactory(username="dave", queues=[])
    client.force_login(outsider)
    base = f"/desk/tickets/{hidden.reference}"

    assert client.post(f"{base}/draft/", {"kind": "reply", "text": "x"}).status_code == 404
    assert client.post(f"{base}/draft/discard/", {"kind": "reply"}).status_code == 404
    assert client.post(f"{base}/held/1/undo/").status_code == 404
    assert ReplyDraft.objects.count() == 0


def test_bad_input_is_400_with_the_field(agent_client, email_ticket):
    too_long = agent_client.post(save_url(email_ticket), {"kind": "reply", "text": "x" * (DRAFT_MAX_LENGTH + 1)})
    bad_kind = agent_client.post(save_url(email_ticket), {"kind": "letter", "text": "Hello"})
    no_kind = agent_client.post(save_url(email_ticket), {"text": "Hello"})

    assert too_long.status_code == 400
    assert "text" in too_long.json()
    assert bad_kind.status_code == 400
    assert "kind" in bad_kind.json()
    assert no_kind.status_code == 400
    assert "kind" in no_kind.json()
    assert ReplyDraft.objects.count() == 0


def test_saving_needs_the_csrf_token(agent, email_ticket):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(agent)

    assert strict.post(save_url(email_ticket), {"kind": "reply", "text": "x"}).status_code == 403
    assert ReplyDraft.objects.count() == 0


def test_empty_text_and_discard_remove_the_draft(agent_client, email_ticket):
    agent_client.post(save_url(email_ticket), {"kind": "reply", "text": "One"})
    agent_client.post(save_url(email_ticket), {"kind": "note", "text": "Two"})

    cleared = agent_client.post(save_url(email_ticket), {"kind": "reply", "text": "   "})
    discarded = agent_client.post(f"/desk/tickets/{email_ticket.reference}/draft/discard/", {"kind": "note"})

    assert cleared.json() == {"saved": False, "label": ""}
    assert discarded.status_code == 302
    assert ReplyDraft.objects.count() == 0


def test_sending_deletes_the_draft_of_that_kind(
    agent_client, email_ticket, django_capture_on_commit_callbacks, settings
):
    agent_client.post(save_url(email_ticket), {"kind": "reply", "text": "Please unplug it."})
    agent_client.post(save_url(email_ticket), {"kind": "note", "text": "Keep me"})

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            f"/desk/tickets/{email_ticket.reference}/reply/", {"text": "Please unplug it.", "kind": "reply"}
        )

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert list(ReplyDraft.objects.values_list("kind", "text")) == [("note", "Keep me")]


def test_a_draft_survives_a_property_change_by_another_agent(client, agent, colleague, email_ticket):
    client.force_login(agent)
    client.post(save_url(email_ticket), {"kind": "reply", "text": "Still here"})
    client.force_login(colleague)
    changed = client.post(
        f"/desk/tickets/{email_ticket.reference}/update/",
        {"action": "update", "priority": "high", "original_priority": email_ticket.priority},
    )
    client.force_login(agent)

    page = client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()

    assert changed.status_code == 302
    assert ">\nStill here</textarea>" in page
    assert Message.objects.filter(ticket=email_ticket, kind="public_agent").count() == 0
