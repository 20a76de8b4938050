"""Quarantine: reprocess and discard services, and the workspace pages for managers."""

from __future__ import annotations

import pytest

from channels_app.email.models import InboundEmail, MailAccount
from channels_app.email.services import IngestOutcome, email_ingest, quarantine_discard, quarantine_reprocess
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.events import Actor
from servicedesk.tickets.models import Ticket
from tests.channels_app.email.test_ingest import mail

pytestmark = pytest.mark.django_db


@pytest.fixture
def quarantined(settings):
    settings.SERVICEDESK_EMAIL = {"MAX_BYTES": 1000}
    raw = mail(body="x" * 2000)
    result = email_ingest(raw=raw, source="pipe")
    assert result.outcome is IngestOutcome.QUARANTINED
    return result.inbound_email


def test_reprocess_after_raising_the_limit_processes_the_mail(quarantined, settings):
    settings.SERVICEDESK_EMAIL = {"MAX_BYTES": 10_000}

    result = quarantine_reprocess(inbound_email=quarantined)

    quarantined.refresh_from_db()
    ticket = Ticket.objects.get()
    assert (result.outcome, result.reference, result.reason) == (IngestOutcome.STORED, ticket.reference, None)
    assert (quarantined.status, quarantined.quarantine_reason, quarantined.attempts) == ("processed", "", 2)
    assert quarantined.ticket == ticket
    assert quarantined.message.text == "x" * 2000


def test_reprocess_that_fails_again_stays_quarantined(quarantined):
    result = quarantine_reprocess(inbound_email=quarantined)

    quarantined.refresh_from_db()
    assert result.outcome is IngestOutcome.QUARANTINED
    assert (quarantined.status, quarantined.attempts) == ("quarantined", 2)
    assert Ticket.objects.count() == 0


def test_discard_sets_the_mail_aside(quarantined, manager):
    quarantine_discard(inbound_email=quarantined, actor=Actor.agent(manager))

    quarantined.refresh_from_db()
    assert (quarantined.status, quarantined.discarded_by) == ("discarded", manager)
    with pytest.raises(ApplicationError, match=r"^Only quarantined mail can be processed again\.$"):
        quarantine_reprocess(inbound_email=quarantined)
    again = email_ingest(raw=quarantined.raw_bytes(), source="pipe")
    assert again.outcome is IngestOutcome.DUPLICATE
    assert InboundEmail.objects.count() == 1


def test_processed_mail_cannot_be_discarded(manager):
    row = email_ingest(raw=mail(), source="pipe").inbound_email

    with pytest.raises(ApplicationError, match=r"^Only quarantined mail can be discarded\.$"):
        quarantine_discard(inbound_email=row, actor=Actor.agent(manager))
    row.refresh_from_db()
    assert row.status == "processed"


# --- pages --------------------------------------------------------------------


def test_manager_sees_the_list_and_the_detail(client, manager, quarantined):
    client.force_login(manager)

    listing = client.get("/desk/quarantine/")
    detail = client.get(f"/desk/quarantine/{quarantined.pk}/")

    assert listing.status_code == 200
    assert list(listing.context["page"].object_list) == [quarantined]
    html = listing.content.decode()
    assert f"too large: {quarantined.size} bytes &gt; 1000" in html
    # Not parsed (over the size limit), but its header block still names sender and subject.
    assert "alice@example.com" in html and "Printer is on fire" in html
    assert 'href="/desk/quarantine/"' in html
    assert detail.status_code == 200
    assert detail.context["mail"] == quarantined
    assert f'action="/desk/quarantine/{quarantined.pk}/reprocess/"' in detail.content.decode()


def test_list_shows_sender_and_subject_when_parsed(client, manager):
    email_ingest(raw=mail(body=""), source="pipe")
    client.force_login(manager)

    html = client.get("/desk/quarantine/").content.decode()

    assert "The message is empty." in html
    assert "alice@example.com" in html
    assert "Printer is on fire" in html


@pytest.mark.parametrize(
    "extra",
    [
        "",  # over the size limit
        "To: " + ", ".join(f"u{i}@example.com" for i in range(600)) + "\r\n",  # too many addresses
    ],
)
def test_mail_quarantined_by_the_parser_shows_its_subject_and_message_id(client, manager, settings, extra):
    settings.SERVICEDESK_EMAIL = {"MAX_BYTES": 1000} if not extra else {}
    raw = mail(
        subject="=?utf-8?q?Drucker_brennt?=",
        message_id="<q-1@example.com>",
        body="x" * 2000 if not extra else "hi",
        extra=extra,
    )
    row = email_ingest(raw=raw, source="pipe").inbound_email
    client.force_login(manager)

    detail = client.get(f"/desk/quarantine/{row.pk}/").content.decode()
    listing = client.get("/desk/quarantine/").content.decode()

    assert (row.status, row.subject, row.rfc_message_id, row.sender) == (
        "quarantined",
        "Drucker brennt",
        "<q-1@example.com>",
        "alice@example.com",
    )
    assert "<dd>Drucker brennt</dd>" in detail and "<dd>&lt;q-1@example.com&gt;</dd>" in detail
    assert "<td>Drucker brennt</td>" in listing


def test_raw_download_is_an_attachment(client, manager, quarantined):
    client.force_login(manager)

    response = client.get(f"/desk/quarantine/{quarantined.pk}/raw/")

    assert response.status_code == 200
    assert response.content == quarantined.raw_bytes()
    assert response["Content-Type"] == "message/rfc822"
    assert response["Content-Disposition"] == f'attachment; filename="message-{quarantined.pk}.eml"'
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("suffix", ["", "{pk}/", "{pk}/raw/"])
def test_agents_get_access_denied_as_on_the_reports(client, agent, quarantined, suffix):
    client.force_login(agent)

    response = client.get("/desk/quarantine/" + suffix.format(pk=quarantined.pk))

    assert response.status_code == 403
    assert "<h1>Access denied</h1>" in response.content.decode()


def test_a_customer_signed_in_gets_not_found(client, quarantined):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="carol"))

    assert client.get("/desk/quarantine/").status_code == 404


def test_a_manager_gets_not_found_for_mail_not_in_quarantine(client, manager, quarantined):
    quarantined.status = "processed"
    quarantined.save(update_fields=["status"])
    client.force_login(manager)

    assert client.get(f"/desk/quarantine/{quarantined.pk}/").status_code == 404


def test_agents_cannot_reprocess_or_discard(client, agent, quarantined):
    client.force_login(agent)

    assert client.post(f"/desk/quarantine/{quarantined.pk}/reprocess/").status_code == 403
    assert client.post(f"/desk/quarantine/{quarantined.pk}/discard/").status_code == 403
    quarantined.refresh_from_db()
    assert quarantined.status == "quarantined"


def test_agent_nav_has_no_quarantine_link(client, agent):
    client.force_login(agent)

    assert 'href="/desk/quarantine/"' not in client.get("/desk/").content.decode()


def test_visitor_is_sent_to_sign_in(client, quarantined):
    response = client.get("/desk/quarantine/")

    assert response.status_code == 302
    assert response["Location"] == "/desk/login/?next=/desk/quarantine/"


def test_reprocess_button(client, manager, quarantined, settings):
    client.force_login(manager)
    settings.SERVICEDESK_EMAIL = {"MAX_BYTES": 10_000}

    response = client.post(f"/desk/quarantine/{quarantined.pk}/reprocess/", follow=True)

    quarantined.refresh_from_db()
    reference = Ticket.objects.get().reference
    assert response.redirect_chain == [("/desk/quarantine/", 302)]
    assert quarantined.status == "processed"
    assert [str(m) for m in response.context["messages"]] == [f"The message was processed ({reference})."]
    assert list(response.context["page"].object_list) == []


def test_reprocess_button_when_it_fails_again(client, manager, quarantined):
    client.force_login(manager)

    response = client.post(f"/desk/quarantine/{quarantined.pk}/reprocess/", follow=True)

    assert response.redirect_chain == [(f"/desk/quarantine/{quarantined.pk}/", 302)]
    assert [str(m) for m in response.context["messages"]] == [
        f"The message is still quarantined: too large: {quarantined.size} bytes > 1000"
    ]


def test_discard_button(client, manager, quarantined):
    client.force_login(manager)

    response = client.post(f"/desk/quarantine/{quarantined.pk}/discard/", follow=True)

    quarantined.refresh_from_db()
    assert response.redirect_chain == [("/desk/quarantine/", 302)]
    assert (quarantined.status, quarantined.discarded_by) == ("discarded", manager)
    assert [str(m) for m in response.context["messages"]] == ["The message was discarded."]
    assert client.get(f"/desk/quarantine/{quarantined.pk}/").status_code == 404


def test_get_on_a_button_is_not_allowed(client, manager, quarantined):
    client.force_login(manager)

    assert client.get(f"/desk/quarantine/{quarantined.pk}/discard/").status_code == 405


# --- admin --------------------------------------------------------------------


def test_admin_lists_and_downloads_the_raw_mail(admin_client, quarantined):
    listing = admin_client.get("/admin/email_channel/inboundemail/")
    download = admin_client.post(
        "/admin/email_channel/inboundemail/",
        {"action": "download_raw", "_selected_action": [str(quarantined.pk)]},
    )

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [quarantined]
    assert download.status_code == 200
    assert download.content == quarantined.raw_bytes()
    assert download["Content-Type"] == "message/rfc822"
    assert download["Content-Disposition"] == f'attachment; filename="message-{quarantined.pk}.eml"'


def test_admin_mail_account_form_stores_the_password_signed(admin_client):
    response = admin_client.post(
        "/admin/email_channel/mailaccount/add/",
        {
            "name": "support",
            "host": "imap.example.com",
            "port": "993",
            "security": "starttls",
            "username": "support",
            "password_env": "",
            "password": "s3cret",
            "folder": "INBOX",
            "processed_folder": "",
            "queue": "",
            "is_active": "on",
        },
    )

    account = MailAccount.objects.get()
    assert response.status_code == 302
    assert (account.security, account.folder, account.password()) == ("starttls", "INBOX", "s3cret")
    assert "s3cret" not in account.password_encrypted
