"""Undo send: a public reply from the ticket page is held, undone into the draft, or released once."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import HeldReply, Message, ReplyDraft
from servicedesk.tickets.services.drafts import (
    held_replies_release_due,
    held_reply_release,
    held_reply_undo,
    reply_draft_save,
)
from servicedesk.tickets.services.tickets import ticket_merge
from tests.e2e.conftest import (  # noqa: F401 (fixtures of the end-to-end tests)
    celery_live,
    celery_worker,
    e2e_redis_url,
    real_services,
    smtp_server,
    wait_until,
)
from tests.factories import AgentFactory, ticket_make


def send(client, ticket, text="Please unplug it.", **extra):
    return client.post(f"/desk/tickets/{ticket.reference}/reply/", {"text": text, "kind": "reply", **extra})


def replies_of(ticket):
    return list(Message.objects.filter(ticket=ticket, kind="public_agent").values_list("text", flat=True))


@pytest.mark.django_db
def test_send_holds_the_reply_and_the_page_offers_undo(
    agent_client, agent, email_ticket, hold, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = send(agent_client, email_ticket)

    assert response.status_code == 302
    held = HeldReply.objects.get()
    assert (held.agent, held.text) == (agent, "Please unplug it.")
    assert (held.send_after - held.created_at) == timedelta(seconds=10)
    # The release scheduled for send_after ran early here (eager tasks) and left it held.
    assert replies_of(email_ticket) == []
    assert mail.outbox == []
    email_ticket.refresh_from_db()
    assert email_ticket.first_reply_at is None
    page = agent_client.get(response["Location"]).content.decode()
    assert "Sending in 10 s" in page or "Sending in 9 s" in page
    assert f'action="/desk/tickets/{email_ticket.reference}/held/{held.pk}/undo/"' in page


@pytest.mark.django_db
def test_undo_in_the_window_takes_the_reply_back_into_the_draft(
    agent_client, agent, email_ticket, hold, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket)
    held = HeldReply.objects.get()

    response = agent_client.post(f"/desk/tickets/{email_ticket.reference}/held/{held.pk}/undo/")

    assert response.status_code == 302
    assert HeldReply.objects.count() == 0
    assert list(ReplyDraft.objects.values_list("agent", "kind", "text")) == [(agent.pk, "reply", "Please unplug it.")]
    page = agent_client.get(response["Location"]).content.decode()
    assert "Your reply was not sent. It is back in the reply box." in page
    assert ">\nPlease unplug it.</textarea>" in page
    # Later runs of the release and the sweep find nothing to send.
    assert held_reply_release(held_id=held.pk, now=held.send_after + timedelta(seconds=1)) is None
    assert held_replies_release_due(now=held.send_after + timedelta(minutes=5)) == 0
    assert replies_of(email_ticket) == []
    assert mail.outbox == []
    email_ticket.refresh_from_db()
    assert email_ticket.first_reply_at is None


@pytest.mark.django_db
def test_undo_keeps_what_was_typed_since(agent, email_ticket, hold):
    from servicedesk.tickets.services.drafts import reply_hold

    held = reply_hold(ticket=email_ticket, author=agent, text="First part.")
    reply_draft_save(agent=agent, ticket=email_ticket, kind="reply", text="Second part.")

    draft = held_reply_undo(held_id=held.pk, ticket=email_ticket, agent=agent, now=held.created_at)

    assert draft.text == "First part.\n\nSecond part."


@pytest.mark.django_db
def test_after_the_window_the_reply_is_delivered_once_and_undo_says_it_was_sent(
    agent_client, agent, email_ticket, hold, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket, action="send_solved")
    held = HeldReply.objects.get()
    released_at = held.send_after + timedelta(seconds=2)

    with django_capture_on_commit_callbacks(execute=True):
        message = held_reply_release(held_id=held.pk, now=released_at)
        again = held_reply_release(held_id=held.pk, now=released_at)
    undo = agent_client.post(f"/desk/tickets/{email_ticket.reference}/held/{held.pk}/undo/", follow=True)

    assert message is not None and again is None
    assert replies_of(email_ticket) == ["Please unplug it."]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].body.startswith("Please unplug it.")
    message.refresh_from_db()
    assert (message.created_at, message.delivery_status, message.author_user) == (released_at, "sent", agent)
    email_ticket.refresh_from_db()
    # The first reply is the release: the instant the reply left the hold (docs/metrics.md#first-reply).
    assert email_ticket.first_reply_at == released_at
    assert email_ticket.status == "solved"
    assert "Too late to undo: the reply was sent." in undo.content.decode()
    assert ReplyDraft.objects.count() == 0


@pytest.mark.django_db
def test_undo_after_the_window_is_refused_even_before_the_release(agent, email_ticket, hold):
    from servicedesk.core.errors import Conflict
    from servicedesk.tickets.services.drafts import reply_hold

    held = reply_hold(ticket=email_ticket, author=agent, text="Late")

    with pytest.raises(Conflict):
        held_reply_undo(held_id=held.pk, ticket=email_ticket, agent=agent, now=held.send_after)
    assert HeldReply.objects.filter(pk=held.pk).exists()


@pytest.mark.django_db
def test_the_sweep_delivers_a_held_reply_whose_task_was_lost(
    agent, email_ticket, hold, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    held = HeldReply.objects.create(
        agent=agent,
        ticket=email_ticket,
        text="Swept out.",
        created_at=timezone.now() - timedelta(minutes=2),
        send_after=timezone.now() - timedelta(minutes=1),
    )
    fresh = HeldReply.objects.create(
        agent=agent,
        ticket=email_ticket,
        text="Not yet.",
        created_at=timezone.now(),
        send_after=timezone.now() + timedelta(seconds=10),
    )

    with django_capture_on_commit_callbacks(execute=True):
        first = held_replies_release_due()
        second = held_replies_release_due()

    assert (first, second) == (1, 0)
    assert replies_of(email_ticket) == ["Swept out."]
    assert [m.body.splitlines()[0] for m in mail.outbox] == ["Swept out."]
    assert list(HeldReply.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not HeldReply.objects.filter(pk=held.pk).exists()


@pytest.mark.django_db
def test_a_reply_the_release_cannot_send_is_returned_beside_the_newer_draft(
    agent_client, agent, email_ticket, queue, customer, django_capture_on_commit_callbacks
):
    from servicedesk.tickets.services.drafts import reply_hold

    held = reply_hold(ticket=email_ticket, author=agent, text="Where does this go?", seconds=10)
    target = ticket_make(queue=queue, customer=customer, subject="Target")
    # Typed after "Send", on the ticket it is about to be merged into and on the ticket itself.
    reply_draft_save(agent=agent, ticket=target, kind="reply", text="Typed on the target since.")
    reply_draft_save(agent=agent, ticket=email_ticket, kind="reply", text="Typed since.")
    ticket_merge(source=email_ticket, target=target, actor=Actor.agent(agent))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert held_reply_release(held_id=held.pk, now=held.send_after) is None
        assert held_replies_release_due(now=held.send_after + timedelta(minutes=5)) == 0

    assert replies_of(email_ticket) == [] and replies_of(target) == []
    assert mail.outbox == []
    # Neither draft is touched: the reply is kept beside them, on the ticket the agent now works on.
    assert sorted(ReplyDraft.objects.values_list("ticket", "text")) == sorted(
        [(email_ticket.pk, "Typed since."), (target.pk, "Typed on the target since.")]
    )
    held.refresh_from_db()
    assert (held.ticket_id, held.returned_at, held.returned_reason) == (target.pk, held.send_after, "merged")
    page = agent_client.get(f"/desk/tickets/{target.reference}/").content.decode()
    assert "Not sent: the ticket it was written on was merged into another one." in page
    assert "Where does this go?</blockquote>" in page
    assert ">\nTyped on the target since.</textarea>" in page
    assert f'action="/desk/tickets/{target.reference}/held/{held.pk}/undo/"' in page

    # "Put back in the reply box": in front of what was typed since, as an undo.
    response = agent_client.post(f"/desk/tickets/{target.reference}/held/{held.pk}/undo/")

    assert response.status_code == 302
    assert HeldReply.objects.count() == 0
    assert ReplyDraft.objects.get(ticket=target).text == "Where does this go?\n\nTyped on the target since."
    assert replies_of(target) == []


@pytest.mark.django_db
def test_a_reply_whose_agent_lost_access_is_not_sent(agent, email_ticket, hold, django_capture_on_commit_callbacks):
    from servicedesk.tickets.services.drafts import reply_hold, returned_replies_of

    held = reply_hold(ticket=email_ticket, author=agent, text="Sent by someone who left the queue.")
    reply_draft_save(agent=agent, ticket=email_ticket, kind="reply", text="Newer draft.")
    agent.queues.clear()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert held_reply_release(held_id=held.pk, now=held.send_after) is None

    assert replies_of(email_ticket) == [] and mail.outbox == []
    assert list(ReplyDraft.objects.values_list("text", flat=True)) == ["Newer draft."]
    assert [(h.pk, h.returned_reason) for h in returned_replies_of(agent=agent, ticket=email_ticket)] == [
        (held.pk, "access")
    ]


@pytest.mark.django_db
def test_a_returned_reply_is_discarded_by_its_agent_only(client, agent, queue, email_ticket, hold):
    from servicedesk.tickets.services.drafts import reply_hold

    held = reply_hold(ticket=email_ticket, author=agent, text="Refused.")
    still_held = reply_hold(ticket=email_ticket, author=agent, text="Still in its window.")
    HeldReply.objects.filter(pk=held.pk).update(returned_at=timezone.now(), returned_reason="refused")
    client.force_login(AgentFactory(username="carol", queues=[queue]))

    assert client.post(f"/desk/tickets/{email_ticket.reference}/held/{held.pk}/discard/").status_code == 404
    assert "Refused." not in client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()

    client.force_login(agent)
    # One still in its window is undone, not discarded.
    assert client.post(f"/desk/tickets/{email_ticket.reference}/held/{still_held.pk}/discard/").status_code == 404
    response = client.post(f"/desk/tickets/{email_ticket.reference}/held/{held.pk}/discard/", follow=True)

    assert response.status_code == 200
    assert "The reply that was not sent was discarded." in response.content.decode()
    assert list(HeldReply.objects.values_list("pk", flat=True)) == [still_held.pk]


@pytest.mark.django_db
def test_notes_are_not_held(agent_client, email_ticket, hold, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            f"/desk/tickets/{email_ticket.reference}/reply/", {"text": "Internal.", "kind": "note"}
        )

    assert response.status_code == 302
    assert HeldReply.objects.count() == 0
    assert Message.objects.filter(ticket=email_ticket, kind="internal", text="Internal.").count() == 1


@pytest.mark.django_db
def test_another_agent_cannot_undo(client, agent, queue, email_ticket, hold):
    from servicedesk.tickets.services.drafts import reply_hold

    held = reply_hold(ticket=email_ticket, author=agent, text="Mine")
    client.force_login(AgentFactory(username="carol", queues=[queue]))

    response = client.post(f"/desk/tickets/{email_ticket.reference}/held/{held.pk}/undo/")

    assert response.status_code == 404
    assert HeldReply.objects.filter(pk=held.pk).exists()
    page = client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()
    assert "Mine" not in page


@pytest.mark.django_db
def test_zero_seconds_sends_at_once(agent_client, email_ticket, settings, django_capture_on_commit_callbacks):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "UNDO_SEND_SECONDS": 0}
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket)

    assert HeldReply.objects.count() == 0
    assert replies_of(email_ticket) == ["Please unplug it."]
    assert len(mail.outbox) == 1


# --- Through the real Celery worker ----------------------------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_worker_delivers_a_held_reply_after_its_window(request, client, settings, queue, agent):
    request.getfixturevalue("celery_live")
    mails = request.getfixturevalue("smtp_server")
    settings.SERVICEDESK = {**settings.SERVICEDESK, "UNDO_SEND_SECONDS": 2}
    ticket = ticket_make(queue=queue, channel="email", subject="Held then sent")
    client.force_login(agent)

    response = send(client, ticket, text="Delivered after the window.")

    assert response.status_code == 302
    assert HeldReply.objects.filter(ticket=ticket).count() == 1
    assert Message.objects.filter(ticket=ticket, kind="public_agent").count() == 0
    received = mails.wait_for_ticket(ticket.reference, timeout=60)
    assert "Delivered after the window." in received.message.get_body(("plain",)).get_content()
    assert wait_until(lambda: HeldReply.objects.filter(ticket=ticket).count() == 0, timeout=10, what="released")
    assert replies_of(ticket) == ["Delivered after the window."]


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_an_undone_reply_never_reaches_the_worker_mail(request, client, settings, queue, agent):
    worker = request.getfixturevalue("celery_live")
    mails = request.getfixturevalue("smtp_server")
    settings.SERVICEDESK = {**settings.SERVICEDESK, "UNDO_SEND_SECONDS": 3}
    ticket = ticket_make(queue=queue, channel="email", subject="Undone")
    client.force_login(agent)

    def releases_done() -> int:
        return sum(
            1 for line in worker.log.splitlines() if "tickets.held_reply_release[" in line and "succeeded" in line
        )

    done_before = releases_done()
    send(client, ticket, text="Never sent.")
    held = HeldReply.objects.get(ticket=ticket)
    undo = client.post(f"/desk/tickets/{ticket.reference}/held/{held.pk}/undo/")

    assert undo.status_code == 302
    # The release task the worker runs at send_after finds nothing to send.
    wait_until(lambda: releases_done() > done_before, timeout=30, what="the release task run by the worker")
    last = [line for line in worker.log.splitlines() if "held_reply_release[" in line and "succeeded" in line][-1]
    assert last.endswith(": False")
    assert mails.mails_for(ticket.reference) == []
    assert replies_of(ticket) == []
    assert ReplyDraft.objects.get(ticket=ticket).text == "Never sent."


# --- What the countdown says when it ends (held_reply_state_json, drafts.js) ----------------


def state_of(client, ticket, held, since=None):
    since = int(held.created_at.timestamp()) if since is None else since
    return client.get(f"/desk/tickets/{ticket.reference}/held/{held.pk}/?since={since}")


@pytest.mark.django_db
def test_the_countdown_says_sent_only_once_the_release_sent_it(
    agent_client, agent, email_ticket, hold, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        send(agent_client, email_ticket)
    held = HeldReply.objects.get()
    page = agent_client.get(f"/desk/tickets/{email_ticket.reference}/").content.decode()
    assert (
        f'data-state-url="/desk/tickets/{email_ticket.reference}/held/{held.pk}/?since={int(held.created_at.timestamp())}"'
        in page
    )

    in_window = state_of(agent_client, email_ticket, held).json()
    assert in_window["state"] == "held" and 9 <= in_window["seconds"] <= 10
    assert in_window["label"] == f"Sending in {in_window['seconds']} s"
    # Its window is over but the release has not run: not "Sent" yet.
    HeldReply.objects.filter(pk=held.pk).update(send_after=timezone.now() - timedelta(seconds=1))
    assert state_of(agent_client, email_ticket, held).json() == {"state": "sending", "label": "Sending…", "seconds": 0}

    with django_capture_on_commit_callbacks(execute=True):
        assert held_reply_release(held_id=held.pk) is not None

    assert state_of(agent_client, email_ticket, held).json() == {"state": "sent", "label": "Sent", "seconds": 0}


@pytest.mark.django_db
def test_the_countdown_says_not_sent_for_a_returned_or_undone_reply(
    agent_client, agent, email_ticket, queue, customer, hold, django_capture_on_commit_callbacks
):
    from servicedesk.tickets.services.drafts import reply_hold

    returned = reply_hold(ticket=email_ticket, author=agent, text="Where does this go?", seconds=10)
    undone = reply_hold(ticket=email_ticket, author=agent, text="Taken back.", seconds=10)
    target = ticket_make(queue=queue, customer=customer, subject="Target")
    ticket_merge(source=email_ticket, target=target, actor=Actor.agent(agent))
    with django_capture_on_commit_callbacks(execute=True):
        assert held_reply_release(held_id=returned.pk, now=returned.send_after) is None
    held_reply_undo(held_id=undone.pk, ticket=email_ticket, agent=agent)

    # Asked from the page it was sent on: returned, on the ticket it was merged into.
    body = state_of(agent_client, email_ticket, returned).json()
    assert body == {
        "state": "returned",
        "label": "Not sent: the ticket it was written on was merged into another one.",
        "seconds": 0,
        "url": f"/desk/tickets/{target.reference}/#returned-reply-{returned.pk}",
        "link": "Open it to put it back in the reply box or discard it",
    }
    assert state_of(agent_client, email_ticket, undone).json() == {
        "state": "undone",
        "label": "Not sent: it was taken back into the reply box.",
        "seconds": 0,
    }
    assert replies_of(email_ticket) == [] and replies_of(target) == []


@pytest.mark.django_db
def test_the_state_of_a_held_reply_is_its_agents_alone_and_since_is_checked(client, agent, queue, email_ticket, hold):
    from servicedesk.tickets.services.drafts import reply_hold

    held = reply_hold(ticket=email_ticket, author=agent, text="Mine", seconds=10)
    colleague = AgentFactory(username="carol", queues=[queue])
    client.force_login(colleague)
    # To another agent of the queue it is a reply of theirs that is gone: nothing of it shows.
    assert state_of(client, email_ticket, held).json() == {
        "state": "undone",
        "label": "Not sent: it was taken back into the reply box.",
        "seconds": 0,
    }
    # A ticket outside their queues is a 404, as on every path of the ticket.
    client.force_login(AgentFactory(username="dave", queues=[]))
    assert state_of(client, email_ticket, held).status_code == 404
    client.logout()
    assert state_of(client, email_ticket, held).status_code == 302  # to the sign-in page

    client.force_login(agent)
    for since in ("", "soon", "-5", "1.5", str(10**12)):
        response = client.get(f"/desk/tickets/{email_ticket.reference}/held/{held.pk}/?since={since}")
        assert response.status_code == 400, since
        assert response.json()["since"] == ["Give when the reply was sent, in whole seconds since 1970."]
    assert client.post(f"/desk/tickets/{email_ticket.reference}/held/{held.pk}/?since=1").status_code == 405
    assert HeldReply.objects.filter(pk=held.pk, returned_at=None).exists()
