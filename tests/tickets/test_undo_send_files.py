"""Undo send with files: a reply's attachments are held with it, go with it, come back with an undo,
and leave no file behind when they are not sent (docs/drafts.md)."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundAttachment, InboundMessage, SenderIdentity
from servicedesk.tickets.models import Attachment, HeldReply, Message, ReplyDraft
from servicedesk.tickets.services.drafts import held_reply_release, reply_hold
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.tickets import ticket_merge
from tests.factories import AgentFactory, ticket_make

pytestmark = pytest.mark.django_db

STEPS = b"1. unplug\n2. wait\n"


def upload(name="steps.txt", content=STEPS):
    return SimpleUploadedFile(name, content, content_type="text/plain")


def send(client, ticket, text="See the steps.", **extra):
    return client.post(f"/desk/tickets/{ticket.reference}/reply/", {"text": text, "kind": "reply", **extra})


def stored_files(settings):
    """Every file in storage, so a test sees one left behind."""
    return sorted(p.read_bytes() for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())


def replies_of(ticket):
    return list(Message.objects.filter(ticket=ticket, kind="public_agent").values_list("text", flat=True))


def test_a_reply_with_a_file_is_held_then_delivered_with_it(
    agent_client, agent, email_ticket, hold, settings, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = send(agent_client, email_ticket, attachments=[upload()], action="send_solved")

    assert response.status_code == 302
    held = HeldReply.objects.get()
    file = Attachment.objects.get()
    assert (file.held_reply_id, file.draft_agent_id, file.message_id) == (held.pk, agent.pk, None)
    assert (file.filename, file.size, file.ticket_id) == ("steps.txt", len(STEPS), email_ticket.pk)
    # Nothing reached the customer in the window.
    assert replies_of(email_ticket) == [] and mail.outbox == []
    page = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()
    assert f'<a href="/desk/attachments/{file.key}/" download>steps.txt</a>' in page
    download = agent_client.get(f"/desk/attachments/{file.key}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == STEPS

    released_at = held.send_after + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        message = held_reply_release(held_id=held.pk, now=released_at)

    assert message is not None
    assert replies_of(email_ticket) == ["See the steps."]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].attachments == [("steps.txt", STEPS.decode(), "text/plain")]
    file.refresh_from_db()
    assert (file.message_id, file.held_reply_id, file.draft_agent_id) == (message.pk, None, None)
    assert HeldReply.objects.count() == 0
    assert stored_files(settings) == [STEPS]
    email_ticket.refresh_from_db()
    assert email_ticket.status == "solved"


def test_a_held_file_is_its_agents_alone(client, agent, queue, email_ticket, hold):
    held = reply_hold(
        ticket=email_ticket,
        author=agent,
        text="Mine",
        attachments=[InboundAttachment(filename="steps.txt", content_type="text/plain", content=STEPS)],
    )
    file = Attachment.objects.get(held_reply=held)
    client.force_login(AgentFactory(username="carol", queues=[queue]))

    assert client.get(f"/desk/attachments/{file.key}/").status_code == 404
    assert file.key not in client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()


def test_undo_brings_the_file_back_for_the_next_reply(
    agent_client, agent, email_ticket, hold, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket, attachments=[upload()])
    held = HeldReply.objects.get()
    file = Attachment.objects.get()

    response = agent_client.post(f"/desk/tickets/{email_ticket.reference}/held/{held.pk}/undo/")

    assert response.status_code == 302
    assert HeldReply.objects.count() == 0
    assert list(ReplyDraft.objects.values_list("text", flat=True)) == ["See the steps."]
    file.refresh_from_db()
    assert (file.held_reply_id, file.draft_agent_id, file.message_id) == (None, agent.pk, None)
    page = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()
    assert f'<input type="checkbox" name="kept_files" value="{file.key}" checked>' in page
    assert ">\nSee the steps.</textarea>" in page

    # Sent again with the kept file ticked (and sent at once this time): it goes with the reply.
    settings.SERVICEDESK = {**settings.SERVICEDESK, "UNDO_SEND_SECONDS": 0}
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = send(agent_client, email_ticket, text="See the steps, again.", kept_files=[file.key])

    assert response.status_code == 302
    assert replies_of(email_ticket) == ["See the steps, again."]
    assert mail.outbox[0].attachments == [("steps.txt", STEPS.decode(), "text/plain")]
    file.refresh_from_db()
    assert file.message.text == "See the steps, again." and file.draft_agent_id is None
    assert stored_files(settings) == [STEPS]


def test_a_kept_file_left_unticked_is_removed_when_the_reply_is_sent(
    agent_client, agent, email_ticket, hold, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket, attachments=[upload()])
        agent_client.post(f"/desk/tickets/{email_ticket.reference}/held/{HeldReply.objects.get().pk}/undo/")
    assert stored_files(settings) == [STEPS]

    with django_capture_on_commit_callbacks(execute=True):
        response = send(agent_client, email_ticket, text="Without the file.")

    assert response.status_code == 302
    held = HeldReply.objects.get()
    assert held.text == "Without the file."
    assert Attachment.objects.count() == 0
    assert stored_files(settings) == []


def test_discarding_the_draft_removes_its_kept_files(
    agent_client, agent, email_ticket, hold, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket, attachments=[upload()])
        agent_client.post(f"/desk/tickets/{email_ticket.reference}/held/{HeldReply.objects.get().pk}/undo/")
        response = agent_client.post(f"/desk/tickets/{email_ticket.reference}/draft/discard/", {"kind": "reply"})

    assert response.status_code == 302
    assert ReplyDraft.objects.count() == 0
    assert Attachment.objects.count() == 0
    assert stored_files(settings) == []


def test_typing_the_box_empty_keeps_the_files(
    agent_client, agent, email_ticket, hold, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket, attachments=[upload()])
        agent_client.post(f"/desk/tickets/{email_ticket.reference}/held/{HeldReply.objects.get().pk}/undo/")

    response = agent_client.post(f"/desk/tickets/{email_ticket.reference}/draft/", {"kind": "reply", "text": ""})

    assert response.status_code == 200
    assert ReplyDraft.objects.count() == 0
    assert Attachment.objects.get().draft_agent == agent


def test_a_returned_reply_keeps_its_file_and_discarding_it_removes_the_file(
    agent_client, agent, email_ticket, queue, customer, settings, django_capture_on_commit_callbacks
):
    held = reply_hold(
        ticket=email_ticket,
        author=agent,
        text="Where does this go?",
        seconds=10,
        attachments=[InboundAttachment(filename="steps.txt", content_type="text/plain", content=STEPS)],
    )
    target = ticket_make(queue=queue, customer=customer, subject="Target")
    ticket_merge(source=email_ticket, target=target, actor=Actor.agent(agent))

    with django_capture_on_commit_callbacks(execute=True):
        assert held_reply_release(held_id=held.pk, now=held.send_after) is None

    file = Attachment.objects.get()
    assert (file.ticket_id, file.held_reply_id, file.message_id) == (target.pk, held.pk, None)
    page = agent_client.get(f"/desk/tickets/{target.reference}/").content.decode()
    assert f'<a href="/desk/attachments/{file.key}/" download>steps.txt</a>' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(f"/desk/tickets/{target.reference}/held/{held.pk}/discard/")

    assert response.status_code == 302
    assert HeldReply.objects.count() == 0 and Attachment.objects.count() == 0
    assert stored_files(settings) == []


def test_a_refused_hold_leaves_no_file(agent, email_ticket, queue, customer, settings):
    from servicedesk.core.errors import ApplicationError

    ticket_merge(
        source=email_ticket,
        target=ticket_make(queue=queue, customer=customer, subject="Target"),
        actor=Actor.agent(agent),
    )

    with pytest.raises(ApplicationError):
        reply_hold(
            ticket=email_ticket,
            author=agent,
            text="Too late.",
            seconds=10,
            attachments=[InboundAttachment(filename="steps.txt", content_type="text/plain", content=STEPS)],
        )

    assert HeldReply.objects.count() == 0 and Attachment.objects.count() == 0
    assert stored_files(settings) == []


def test_more_files_than_the_limit_with_the_kept_ones_are_refused(
    agent_client, agent, email_ticket, hold, settings, django_capture_on_commit_callbacks
):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "ATTACHMENT_MAX_COUNT": 1}
    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket, attachments=[upload()])
        agent_client.post(f"/desk/tickets/{email_ticket.reference}/held/{HeldReply.objects.get().pk}/undo/")
    kept = Attachment.objects.get()

    response = send(agent_client, email_ticket, attachments=[upload("more.txt", b"more\n")], kept_files=[kept.key])

    assert response.status_code == 400
    assert "At most 1 files can be attached." in response.content.decode()
    assert HeldReply.objects.count() == 0
    assert list(Attachment.objects.values_list("pk", "draft_agent")) == [(kept.pk, agent.pk)]
    assert stored_files(settings) == [STEPS]


def test_a_kept_file_of_someone_else_is_a_400(agent_client, agent, queue, email_ticket, hold):
    carol = AgentFactory(username="carol", queues=[queue])
    theirs = reply_hold(
        ticket=email_ticket,
        author=carol,
        text="Carol's",
        attachments=[InboundAttachment(filename="steps.txt", content_type="text/plain", content=STEPS)],
    )
    key = Attachment.objects.get(held_reply=theirs).key

    forged = send(agent_client, email_ticket, kept_files=[key])
    malformed = send(agent_client, email_ticket, kept_files=["../../etc/passwd"])

    assert forged.status_code == 400
    assert "A file kept from your unsent reply is no longer there; attach it again." in forged.content.decode()
    assert malformed.status_code == 400
    assert HeldReply.objects.filter(agent=agent).count() == 0
    assert Attachment.objects.get().held_reply_id == theirs.pk


def test_a_collision_keeps_the_files_for_send_anyway(
    agent_client, agent, email_ticket, settings, django_capture_on_commit_callbacks
):
    seen = Message.objects.get(ticket=email_ticket, kind="public_enduser").pk
    inbound_message_receive(
        inbound=InboundMessage(
            channel="email",
            external_id="<f2@example.com>",
            sender=SenderIdentity(kind="email", value="alice@example.com", name="Alice Byrne"),
            subject=f"Re: [{email_ticket.reference}] Printer on fire",
            text="Now it is really burning!",
            queue="support",
            ticket_reference=email_ticket.reference,
            reference_trusted=True,
        )
    )

    response = send(agent_client, email_ticket, attachments=[upload()], after_message=seen)

    assert response.status_code == 409
    kept = Attachment.objects.get()
    assert (kept.draft_agent_id, kept.message_id, kept.held_reply_id) == (agent.pk, None, None)
    assert f'name="kept_files" value="{kept.key}" checked>' in response.content.decode()

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sent = send(agent_client, email_ticket, force="1", kept_files=[kept.key])

    assert sent.status_code == 302
    assert mail.outbox[0].attachments == [("steps.txt", STEPS.decode(), "text/plain")]
    assert stored_files(settings) == [STEPS]
