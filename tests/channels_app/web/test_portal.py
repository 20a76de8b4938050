import re
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse

from servicedesk.tickets.access import portal_token_for
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, SenderIdentity
from servicedesk.tickets.models import Attachment, Message, Ticket, TicketEvent
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import ticket_merge, ticket_status_change
from tests.channels_app.web.helpers import PDF_BYTES, PNG_BYTES, pdf, png, sign_in


def receive(
    *, email="alice@example.com", name="Alice Byrne", subject="Cannot log in", text="Password reset fails.", files=()
):
    return inbound_message_receive(
        inbound=InboundMessage(
            channel="web",
            external_id=str(uuid.uuid4()),
            sender=SenderIdentity(kind="email", value=email, name=name),
            subject=subject,
            text=text,
            attachments=tuple(files),
        )
    )


def ticket_url(ticket: Ticket) -> str:
    return reverse("web:ticket", kwargs={"token": portal_token_for(ticket)})


def attachment_url(ticket: Ticket, attachment: Attachment) -> str:
    return reverse("web:attachment", kwargs={"token": portal_token_for(ticket), "key": attachment.key})


@pytest.mark.django_db
def test_ticket_page_shows_the_public_thread_only(client, agent):
    result = receive(files=[InboundAttachment("screen.png", "image/png", PNG_BYTES)])
    ticket = result.ticket
    ticket_reply_create(ticket=ticket, author=agent, text="Try <this> link\nthen sign in.", deliver=False)
    ticket_note_create(ticket=ticket, author=agent, text="Secret: customer is on the watch list")
    receive(email="bob@example.com", name="Bob", subject="Other person's problem", text="Bob's private text")

    url = ticket_url(ticket)
    response = client.get(url)

    assert response.status_code == 200
    body = response.content.decode()
    assert f'<span class="reference">{ticket.reference}</span> Cannot log in' in body
    assert '<span class="badge status-new">New</span>' in body
    assert [m.kind for m in response.context["thread"]] == ["public_enduser", "system", "public_agent"]
    assert "Password reset fails." in body
    assert "Try &lt;this&gt; link<br>then sign in." in body
    assert "<strong>Ann</strong>" in body
    assert "<strong>Alice Byrne</strong>" in body
    assert "Secret" not in body
    assert "Bob" not in body and "Other person" not in body
    attachment = Attachment.objects.get(ticket=ticket)
    assert f'<a href="{url}attachments/{attachment.key}/" download>screen.png</a>' in body
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"


@pytest.mark.django_db
def test_ticket_page_renders_in_constant_queries(client, agent):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ticket = receive(files=[InboundAttachment("screen.png", "image/png", PNG_BYTES)]).ticket
    url = ticket_url(ticket)
    with CaptureQueriesContext(connection) as short:
        client.get(url)
    for n in range(5):
        ticket_reply_create(
            ticket=ticket,
            author=agent,
            text=f"Reply {n}",
            deliver=False,
            attachments=[InboundAttachment(f"r{n}.pdf", "application/pdf", PDF_BYTES)],
        )

    with CaptureQueriesContext(connection) as long:
        response = client.get(url)

    assert len(response.context["thread"]) == 7
    assert response.content.decode().count("/attachments/") == 6
    # The link's ticket, the access rule applied to it (access.ticket_thread_target), the thread, its attachments.
    assert len(long.captured_queries) == len(short.captured_queries) == 4


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["nonsense", "eyJ0IjoxfQ:abc:def", "a" * 300])
def test_bad_token_is_not_found(client, token):
    receive()

    assert client.get(f"/help/tickets/{token}/").status_code == 404
    assert client.post(f"/help/tickets/{token}/", {"message": "hi"}).status_code == 404
    assert client.get(f"/help/tickets/{token}/attachments/abc/").status_code == 404
    assert Message.objects.filter(kind="public_enduser").count() == 1


@pytest.mark.django_db
def test_rotated_portal_key_revokes_the_link(client):
    ticket = receive().ticket
    url = ticket_url(ticket)
    Ticket.objects.filter(pk=ticket.pk).update(portal_key="0" * 32)

    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_attachment_download_is_served_as_a_file(client):
    ticket = receive(files=[InboundAttachment("report.pdf", "application/pdf", PDF_BYTES)]).ticket
    attachment = Attachment.objects.get(ticket=ticket)

    response = client.get(attachment_url(ticket, attachment))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF_BYTES
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


@pytest.mark.django_db
def test_token_of_one_ticket_cannot_fetch_another_tickets_attachment(client):
    mine = receive().ticket
    theirs = receive(email="bob@example.com", files=[InboundAttachment("bob.pdf", "application/pdf", PDF_BYTES)]).ticket
    attachment = Attachment.objects.get(ticket=theirs)

    response = client.get(reverse("web:attachment", kwargs={"token": portal_token_for(mine), "key": attachment.key}))

    assert response.status_code == 404
    assert client.get(attachment_url(theirs, attachment)).status_code == 200


@pytest.mark.django_db
def test_attachment_of_an_internal_note_is_not_found(client, agent):
    ticket = receive().ticket
    ticket_note_create(
        ticket=ticket,
        author=agent,
        text="Internal scan",
        attachments=[InboundAttachment("scan.pdf", "application/pdf", PDF_BYTES)],
    )
    attachment = Attachment.objects.get(ticket=ticket)

    assert client.get(attachment_url(ticket, attachment)).status_code == 404


@pytest.mark.django_db
def test_portal_reply_joins_the_ticket_and_reopens_it(client, agent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ticket = receive().ticket
    assert len(mail.outbox) == 1
    ticket_status_change(ticket=ticket, status="solved", actor=Actor.agent(agent))
    url = ticket_url(ticket)
    submission_id = str(uuid.uuid4())

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {"message": "It broke again.", "attachments": [png()], "submission_id": submission_id}
        )

    assert response.status_code == 302
    assert response["Location"] == url
    assert Ticket.objects.count() == 1
    ticket.refresh_from_db()
    assert ticket.status == "open"
    reply = Message.objects.filter(ticket=ticket, kind="public_enduser").order_by("pk").last()
    assert (reply.channel, reply.external_id, reply.text, reply.author_customer_id) == (
        "web",
        submission_id,
        "It broke again.",
        ticket.customer_id,
    )
    assert list(reply.attachments.values_list("filename", "content_type")) == [("screen.png", "image/png")]
    assert Message.objects.filter(ticket=ticket, purpose="acknowledgement").count() == 1
    assert len(mail.outbox) == 1
    assert list(
        TicketEvent.objects.filter(ticket=ticket, kind="status").order_by("pk").values_list("before", "after")
    ) == [("new", "solved"), ("solved", "open")]
    page = client.get(url)
    assert "Your reply was added to your request." in page.content.decode()
    assert "It broke again." in page.content.decode()


@pytest.mark.django_db
def test_portal_reply_posted_twice_is_stored_once(client):
    ticket = receive().ticket
    data = {"message": "Any news?", "submission_id": str(uuid.uuid4())}

    client.post(ticket_url(ticket), data)
    client.post(ticket_url(ticket), data)

    assert list(Message.objects.filter(ticket=ticket, kind="public_enduser").values_list("text", flat=True)) == [
        "Password reset fails.",
        "Any news?",
    ]


@pytest.mark.django_db
def test_empty_reply_and_bad_file_are_field_errors(client):
    ticket = receive().ticket
    url = ticket_url(ticket)

    empty = client.post(url, {"message": "  ", "submission_id": str(uuid.uuid4())})
    bad = client.post(url, {"message": "see file", "attachments": [pdf("x.exe")], "submission_id": str(uuid.uuid4())})

    assert (empty.status_code, bad.status_code) == (200, 200)
    assert empty.context["form"].errors == {"message": ["Write a reply or attach a file."]}
    assert bad.context["form"].errors == {"attachments": ["x.exe is not a file type we accept."]}
    assert Message.objects.filter(ticket=ticket, kind="public_enduser").count() == 1
    assert Attachment.objects.count() == 0


@pytest.mark.django_db
def test_the_reply_box_says_what_a_reply_needs_instead_of_optional(client):
    ticket = receive().ticket

    page = client.get(ticket_url(ticket)).content.decode()

    assert "(optional)" not in page
    assert "Write a reply, attach a file, or both." in page


@pytest.mark.django_db
def test_a_reply_with_only_an_attachment_is_accepted(client):
    ticket = receive().ticket

    response = client.post(
        ticket_url(ticket), {"message": "", "attachments": [pdf("scan.pdf")], "submission_id": str(uuid.uuid4())}
    )

    assert response.status_code == 302
    reply = Message.objects.filter(ticket=ticket, kind="public_enduser").order_by("pk").last()
    assert reply is not None
    assert (reply.text, [a.filename for a in reply.attachments.all()]) == ("", ["scan.pdf"])


@pytest.mark.django_db
def test_merged_ticket_link_opens_the_target(client, agent):
    source = receive(subject="First try").ticket
    target = receive(subject="Second try").ticket
    ticket_merge(source=source, target=target, actor=Actor.agent(agent))
    source_url = ticket_url(source)

    page = client.get(source_url)
    client.post(source_url, {"message": "Following up", "submission_id": str(uuid.uuid4())})

    assert page.status_code == 200
    assert page.context["ticket"].pk == target.pk
    assert Message.objects.get(text="Following up").ticket_id == target.pk


@pytest.mark.django_db
def test_portal_lists_a_signed_in_customers_own_tickets_latest_change_first(client):
    first = receive(subject="Older request").ticket
    second = receive(subject="Newer request").ticket
    receive(email="bob@example.com", subject="Bob's request")
    sign_in(client, first.customer)

    response = client.get("/help/tickets/")

    assert response.status_code == 200
    assert [t.reference for t in response.context["rows"]] == [second.reference, first.reference]
    body = response.content.decode()
    assert "Bob" not in body
    links = re.findall(r'<a href="(/help/requests/[^"]+/)">(SD-\d+)</a>', body)
    assert [reference for _url, reference in links] == [second.reference, first.reference]
    assert client.get(links[0][0]).context["ticket"].pk == second.pk
    # A change to the older one puts it first.
    Ticket.objects.filter(pk=first.pk).update(updated_at=second.updated_at + timedelta(minutes=1))
    assert [t.reference for t in client.get("/help/tickets/").context["rows"]] == [first.reference, second.reference]


@pytest.mark.django_db
def test_portal_explains_the_emailed_link_to_visitors_and_agents(client, agent):
    alice = receive().ticket.customer
    # Even an agent whose account is linked to a customer record is nobody in the help centre.
    alice.user = agent
    alice.save(update_fields=["user"])

    visitor = client.get("/help/tickets/")
    client.force_login(agent)
    as_agent = client.get("/help/tickets/")

    for response in (visitor, as_agent):
        assert response.status_code == 200
        body = response.content.decode()
        assert "with the link in that email" in body
        assert 'href="/help/contact/">Contact us</a>' in body
        assert "SD-" not in body
