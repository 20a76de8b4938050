import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, SenderIdentity
from servicedesk.tickets.models import Attachment, Message, Ticket, TicketEvent
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_note_create
from servicedesk.tickets.services.tickets import ticket_merge, ticket_status_change
from tests.factories import AgentFactory, OrganizationFactory, ticket_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def email_ticket(queue, customer):
    """A ticket opened by Alice's email, with her message and the acknowledgement."""
    result = inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<m1@example.com>",
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            subject="Printer on fire",
            text="Smoke is coming out of the printer.",
            queue="support",
        )
    )
    return result.ticket


def events_after(ticket: Ticket, first_id: int) -> list[tuple[str, object, object, str]]:
    return [
        (e.kind, e.before, e.after, e.source)
        for e in TicketEvent.objects.filter(ticket=ticket, pk__gt=first_id).order_by("id")
    ]


def last_event_id(ticket: Ticket) -> int:
    return TicketEvent.objects.filter(ticket=ticket).order_by("-id").values_list("id", flat=True).first()


def test_ticket_page_shows_thread_notes_and_customer_history(agent_client, agent, email_ticket, customer):
    customer.organization = OrganizationFactory(name="Acme", tier="gold")
    customer.save()
    ticket_note_create(ticket=email_ticket, author=agent, text="Called facilities.", actor=Actor.agent(agent))
    chat = ticket_make(customer=customer, subject="Chat about toner", channel="chat")

    response = agent_client.get(f"/desk/tickets/{email_ticket.reference}/")

    assert response.status_code == 200
    content = response.content.decode()
    assert f"{email_ticket.reference}</span> Printer on fire</h1>" in content
    assert '<article class="msg msg-public_enduser"' in content
    assert "Smoke is coming out of the printer." in content
    assert '<article class="msg msg-internal"' in content
    assert "Called facilities." in content
    assert '<article class="msg msg-system"' in content
    assert '<span class="delivery delivery-queued">Queued</span>' in content
    # Customer panel: organization, tier, identity, and the chat ticket.
    assert ">Alice Byrne</a></p>" in content
    # The tier's code is shown as a name (unknown codes capitalised), the code as its tooltip.
    assert 'Acme <span class="badge tier" title="gold">Gold</span>' in content
    assert "alice@example.com" in content
    assert (
        f'<li data-reference="{chat.reference}"><a href="/desk/tickets/{chat.reference}/">{chat.reference}</a> Chat about toner'
        in content
    )
    assert '<span class="muted">Chat</span>' in content
    assert 'name="text"' in content
    assert 'name="kind" value="reply"' in content
    assert 'name="kind" value="note"' in content
    assert 'name="attachments"' in content
    # Reply and properties are one form: one status menu, joined to the reply's form.
    assert content.count('<select name="status"') == 1
    assert '<select name="status" form="reply-form" id="props_status">' in content
    email_ticket.refresh_from_db()
    assert email_ticket.version == 2  # opened, then the note
    assert '<input type="hidden" name="version" value="2" form="reply-form" id="props_version">' in content
    assert '<input type="hidden" name="original_status" value="new" form="reply-form"' in content
    assert (
        '<button type="submit" name="action" value="send_solved" class="secondary">Send and set solved</button>'
        in content
    )
    assert '<button type="submit" form="reply-form" name="action" value="update">Update</button>' in content


def test_ticket_page_lists_timeline_with_names(agent_client, agent, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {"assignee": agent.pk, "status": "open"})

    content = agent_client.get(f"/desk/tickets/{ticket.reference}/").content.decode()

    assert "History (3 events)" in content
    assert '<span class="event-kind">Assignee</span>' in content
    assert '<span class="event-after">Ann</span>' in content
    assert '<span class="event-before">New</span> &rarr;' in content
    assert '<span class="event-after">Open</span>' in content
    assert '<span class="muted event-source">(workspace)</span>' in content
    assert '<span class="muted event-source">(automatic)</span>' in content


def _page_queries(client, reference: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/desk/tickets/{reference}/")
    assert response.status_code == 200
    return len(captured)


def test_ticket_page_queries_do_not_grow_with_the_thread(agent_client, agent, email_ticket, customer):
    def add(n: int) -> None:
        for i in range(n):
            ticket_note_create(
                ticket=email_ticket,
                author=agent,
                text=f"Note {i}",
                actor=Actor.agent(agent),
                attachments=[InboundAttachment(filename=f"n{i}.txt", content_type="text/plain", content=b"x")],
            )
            ticket_make(customer=customer, subject=f"Other {i}", channel="phone")

    add(2)
    few = _page_queries(agent_client, email_ticket.reference)
    add(10)
    many = _page_queries(agent_client, email_ticket.reference)

    assert many == few


def test_failed_delivery_shows_the_reason(agent_client, email_ticket):
    Message.objects.filter(ticket=email_ticket, kind="system").update(
        delivery_status="failed", delivery_error="550 mailbox unavailable"
    )

    content = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()

    assert '<span class="delivery delivery-failed">Failed: 550 mailbox unavailable</span>' in content


def test_merged_ticket_links_to_its_target(agent_client, queue, customer):
    source = ticket_make(customer=customer, queue=queue, subject="Duplicate")
    target = ticket_make(customer=customer, queue=queue, subject="Original")
    ticket_merge(source=source, target=target, actor=Actor.system())

    # The old reference leads to the target (docs/merging.md); ``stay`` shows the old record itself.
    assert agent_client.get(f"/desk/tickets/{source.reference}/")["Location"] == f"/desk/tickets/{target.reference}/"
    content = agent_client.get(f"/desk/tickets/{source.reference}/", {"stay": "1"}).content.decode()

    assert f"This ticket was merged into {target.reference}." in content
    assert f'<a href="/desk/tickets/{target.reference}/">Go to {target.reference}</a>' in content
    assert 'id="reply-form"' not in content


def test_public_reply_is_emailed_and_recorded(agent_client, agent, email_ticket, django_capture_on_commit_callbacks):
    before = last_event_id(email_ticket)

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            f"/desk/tickets/{email_ticket.reference}/reply/",
            {"text": "Please unplug it.", "kind": "reply", "status": "pending"},
        )

    assert response.status_code == 302
    assert response["Location"] == f"/desk/tickets/{email_ticket.reference}/"
    reply = Message.objects.get(ticket=email_ticket, kind="public_agent")
    assert reply.text == "Please unplug it."
    assert reply.author_user == agent
    assert reply.delivery_status == "sent"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == f"Re: [{email_ticket.reference}] Printer on fire"
    assert mail.outbox[0].to == ["Alice Byrne <alice@example.com>"]
    assert mail.outbox[0].body == "Please unplug it.\n\nSee all your requests: http://127.0.0.1:8000/help/sign-in/\n"
    email_ticket.refresh_from_db()
    assert email_ticket.status == "pending"
    assert events_after(email_ticket, before) == [
        ("message", None, {"kind": "public_agent", "channel": "email"}, "ui"),
        ("status", "new", "pending", "ui"),
        ("delivery", "sending", {"status": "sent"}, "system"),
    ]
    page = agent_client.get(response["Location"]).content.decode()
    assert "Your reply was sent to the customer." in page
    assert '<span class="delivery delivery-sent">Sent</span>' in page


def test_internal_note_sends_no_email(agent_client, agent, email_ticket, django_capture_on_commit_callbacks):
    before = last_event_id(email_ticket)

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            f"/desk/tickets/{email_ticket.reference}/reply/", {"text": "Customer sounds upset.", "kind": "note"}
        )

    assert response.status_code == 302
    note = Message.objects.get(ticket=email_ticket, kind="internal")
    assert note.text == "Customer sounds upset."
    assert note.delivery_status == ""
    assert mail.outbox == []
    assert events_after(email_ticket, before) == [("message", None, {"kind": "internal", "channel": "email"}, "ui")]
    email_ticket.refresh_from_db()
    assert email_ticket.status == "new"


def test_reply_with_attachment_can_be_downloaded(agent_client, email_ticket, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("steps.txt", b"1. unplug\n2. wait\n", content_type="text/plain")

    with django_capture_on_commit_callbacks(execute=True):
        agent_client.post(
            f"/desk/tickets/{email_ticket.reference}/reply/",
            {"text": "See the steps.", "kind": "reply", "attachments": [upload]},
        )

    attachment = Attachment.objects.get(ticket=email_ticket)
    assert attachment.filename == "steps.txt"
    assert mail.outbox[0].attachments == [("steps.txt", "1. unplug\n2. wait\n", "text/plain")]
    page = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()
    assert f'<a href="/desk/attachments/{attachment.key}/" download>steps.txt</a>' in page

    response = agent_client.get(f"/desk/attachments/{attachment.key}/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain"
    assert response["Content-Disposition"] == 'attachment; filename="steps.txt"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == b"1. unplug\n2. wait\n"


def test_empty_reply_is_refused_with_a_field_error(agent_client, email_ticket):
    response = agent_client.post(f"/desk/tickets/{email_ticket.reference}/reply/", {"text": "", "kind": "reply"})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert Message.objects.filter(ticket=email_ticket, kind="public_agent").count() == 0


def test_rejected_attachment_type_writes_nothing(agent_client, email_ticket):
    upload = SimpleUploadedFile("run.exe", b"MZ\x90\x00", content_type="application/octet-stream")

    response = agent_client.post(
        f"/desk/tickets/{email_ticket.reference}/reply/",
        {"text": "Run this.", "kind": "reply", "attachments": [upload]},
    )

    assert response.status_code == 400
    content = response.content.decode()
    assert "run.exe is not a file type we accept." in content
    assert "Run this.</textarea>" in content
    assert Message.objects.filter(ticket=email_ticket, kind="public_agent").count() == 0
    assert Attachment.objects.count() == 0


def test_reply_with_a_refused_status_writes_nothing(agent_client, email_ticket):
    ticket_status_change(ticket=email_ticket, status="closed", actor=Actor.system())
    before = last_event_id(email_ticket)

    response = agent_client.post(
        f"/desk/tickets/{email_ticket.reference}/reply/", {"text": "Parking this.", "kind": "note", "status": "pending"}
    )

    assert response.status_code == 400
    assert "A ticket cannot go from Closed to Pending." in response.content.decode()
    assert Message.objects.filter(ticket=email_ticket, kind="internal").count() == 0
    assert events_after(email_ticket, before) == []


def test_update_changes_each_field_with_one_event_each(agent_client, agent, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    before = last_event_id(ticket)

    response = agent_client.post(
        f"/desk/tickets/{ticket.reference}/update/",
        {"status": "open", "priority": "high", "assignee": agent.pk, "queue": queue.pk, "tags": "VIP, billing ,vip"},
    )

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority, ticket.assignee_id) == ("open", "high", agent.pk)
    assert sorted(ticket.tags.values_list("name", flat=True)) == ["billing", "vip"]
    assert events_after(ticket, before) == [
        ("priority", "normal", "high", "ui"),
        ("assignee", None, agent.pk, "ui"),
        ("tags", [], ["billing", "vip"], "ui"),
        ("status", "new", "open", "ui"),
    ]
    assert TicketEvent.objects.filter(pk__gt=before, actor_user=agent).count() == 4
    assert "The ticket was updated." in agent_client.get(response["Location"]).content.decode()


def test_update_with_nothing_changed_records_nothing(agent_client, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    before = last_event_id(ticket)

    response = agent_client.post(
        f"/desk/tickets/{ticket.reference}/update/",
        {"status": "new", "priority": "normal", "assignee": "", "queue": queue.pk, "tags": ""},
    )

    assert events_after(ticket, before) == []
    assert "Nothing was changed." in agent_client.get(response["Location"]).content.decode()


def test_unassign(agent_client, agent, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue, assignee=agent)
    before = last_event_id(ticket)

    agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {"assignee": ""})

    ticket.refresh_from_db()
    assert ticket.assignee_id is None
    assert events_after(ticket, before) == [("assignee", agent.pk, None, "ui")]


def test_invalid_transition_changes_nothing(agent_client, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    ticket_status_change(ticket=ticket, status="closed", actor=Actor.system())
    before = last_event_id(ticket)

    response = agent_client.post(
        f"/desk/tickets/{ticket.reference}/update/", {"status": "pending", "priority": "urgent", "tags": "late"}
    )

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority) == ("closed", "normal")
    assert list(ticket.tags.values_list("name", flat=True)) == []
    assert events_after(ticket, before) == []
    page = agent_client.get(response["Location"]).content.decode()
    assert '<li class="flash-error">A ticket cannot go from Closed to Pending.</li>' in page


def test_assigning_an_agent_of_another_queue_is_refused(agent_client, billing_agent, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    before = last_event_id(ticket)

    response = agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {"assignee": billing_agent.pk})

    ticket.refresh_from_db()
    assert ticket.assignee_id is None
    assert events_after(ticket, before) == []
    page = agent_client.get(response["Location"]).content.decode()
    assert "This agent does not work in the ticket&#x27;s queue." in page


def test_assignee_menu_offers_queue_members_and_managers(agent_client, agent, manager, billing_agent, queue, customer):
    colleague = AgentFactory(username="cy", display_name="Cy", queues=[queue])
    ticket = ticket_make(customer=customer, queue=queue)

    content = agent_client.get(f"/desk/tickets/{ticket.reference}/").content.decode()

    assert f'<option value="{agent.pk}">Ann</option>' in content
    assert f'<option value="{colleague.pk}">Cy</option>' in content
    assert f'<option value="{manager.pk}">Max</option>' in content
    assert f'<option value="{billing_agent.pk}">' not in content


def test_unknown_priority_is_a_form_error(agent_client, queue, customer):
    ticket = ticket_make(customer=customer, queue=queue)
    before = last_event_id(ticket)

    response = agent_client.post(f"/desk/tickets/{ticket.reference}/update/", {"priority": "whenever"})

    assert events_after(ticket, before) == []
    page = agent_client.get(response["Location"]).content.decode()
    assert "Priority: Select a valid choice. whenever is not one of the available choices." in page


def test_customer_page_lists_tickets_on_every_channel(agent_client, queue, customer):
    email = ticket_make(customer=customer, queue=queue, subject="By mail", channel="email")
    phone = ticket_make(customer=customer, queue=queue, subject="By phone", channel="phone")

    response = agent_client.get(f"/desk/customers/{customer.pk}/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "<h1>Alice Byrne</h1>" in content
    assert "alice@example.com" in content
    assert f'data-reference="{phone.reference}"' in content
    assert f'data-reference="{email.reference}"' in content
    assert "<td>Phone</td>" in content
    assert "<td>Email</td>" in content
    assert "2 tickets" in content
