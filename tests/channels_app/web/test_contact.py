import re
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from servicedesk.tickets.models import Attachment, Customer, Identity, Message, Ticket
from tests.channels_app.web.helpers import PDF_BYTES, PNG_BYTES, contact_data, media_files, pdf, png
from tests.factories import TopicFactory

CONTACT_URL = "/help/contact/"
RECEIVED_URL = "/help/contact/received/"


def counts() -> tuple[int, int, int, int]:
    return (Ticket.objects.count(), Message.objects.count(), Attachment.objects.count(), Customer.objects.count())


def assert_nothing_stored() -> None:
    assert counts() == (0, 0, 0, 0)
    assert media_files(settings.MEDIA_ROOT) == []
    assert mail.outbox == []


@pytest.mark.django_db
def test_urls_keep_their_names():
    assert reverse("web:home") == "/help/"
    assert reverse("web:contact") == CONTACT_URL
    assert reverse("web:contact_received") == RECEIVED_URL
    assert reverse("web:portal") == "/help/tickets/"


@pytest.mark.django_db
def test_help_home_offers_the_form_and_the_email_address(client):
    response = client.get("/help/")

    assert response.status_code == 200
    body = response.content.decode()
    assert f'href="{CONTACT_URL}"' in body
    assert 'href="mailto:support@servicedesk.example"' in body
    assert '<a href="/help/">Help</a>' in body
    assert f'<a href="{CONTACT_URL}">Contact us</a>' in body


@pytest.mark.django_db
def test_contact_form_renders_every_field_and_a_fresh_submission_id(client):
    TopicFactory(slug="billing", name="Billing", name_zh_hans="账单")
    TopicFactory(slug="internal", name="Internal", is_public=False)

    first = client.get(CONTACT_URL)
    second = client.get(CONTACT_URL)

    assert first.status_code == 200
    body = first.content.decode()
    for name in ("name", "email", "subject", "message", "topic", "attachments", "website"):
        assert f'name="{name}"' in body
    assert re.search(r'<input type="file" name="attachments"[^>]* multiple', body)
    assert '<div class="hp-field" aria-hidden="true">' in body
    assert '<option value="billing">Billing</option>' in body
    assert "internal" not in body
    ids = [re.search(r'name="submission_id" value="([^"]+)"', r.content.decode()).group(1) for r in (first, second)]
    assert [str(uuid.UUID(value)) for value in ids] == ids
    assert ids[0] != ids[1]


@pytest.mark.django_db
def test_valid_submission_opens_one_ticket_stores_files_and_sends_one_acknowledgement(
    client, django_capture_on_commit_callbacks
):
    TopicFactory(slug="billing", name="Billing")
    data = contact_data(topic="billing", attachments=[png(), pdf()])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CONTACT_URL, data, REMOTE_ADDR="203.0.113.5")

    assert response.status_code == 302
    assert response["Location"] == RECEIVED_URL
    ticket = Ticket.objects.get()
    assert (ticket.subject, ticket.channel, ticket.status, ticket.topic.slug, ticket.language) == (
        "Printer on fire",
        "web",
        "new",
        "billing",
        "en",
    )
    assert ticket.customer.name == "Jane Doe"
    assert list(Identity.objects.values_list("kind", "value")) == [("email", "jane@example.com")]
    message = Message.objects.get(kind="public_enduser")
    assert (message.ticket_id, message.channel, message.external_id, message.text) == (
        ticket.pk,
        "web",
        data["submission_id"],
        "The printer in room 4 is on fire.\nPlease help.",
    )
    assert Message.objects.filter(ticket=ticket).count() == 2  # the message and its acknowledgement
    stored = sorted(Attachment.objects.filter(message=message), key=lambda a: a.filename)
    assert [(a.filename, a.content_type, a.size) for a in stored] == [
        ("invoice.pdf", "application/pdf", len(PDF_BYTES)),
        ("screen.png", "image/png", len(PNG_BYTES)),
    ]
    assert [Path(a.file.path).read_bytes() for a in stored] == [PDF_BYTES, PNG_BYTES]

    page = client.get(RECEIVED_URL)
    assert page.status_code == 200
    assert f'<strong class="reference">{ticket.reference}</strong>' in page.content.decode()
    assert "An acknowledgement email with this reference" in page.content.decode()

    assert len(mail.outbox) == 1
    ack = mail.outbox[0]
    assert ack.to == ["Jane Doe <jane@example.com>"]
    assert ack.subject == f"[{ticket.reference}] Printer on fire"
    assert ack.extra_headers["Auto-Submitted"] == "auto-replied"
    sent = ack.message()
    assert sent["Auto-Submitted"] == "auto-replied"
    assert re.fullmatch(r"<sd\.\d+\.[0-9a-f]{16}@servicedesk\.example>", sent["Message-ID"])
    assert f"opened ticket {ticket.reference}." in ack.body
    link = re.search(r"http://127\.0\.0\.1:8000(/help/tickets/[^/\s]+/)", ack.body)
    assert link is not None
    portal = client.get(link.group(1))
    assert portal.status_code == 200
    assert f'<span class="reference">{ticket.reference}</span>' in portal.content.decode()


@pytest.mark.django_db
def test_the_reference_is_not_shown_to_another_browser(client):
    client.post(CONTACT_URL, contact_data())
    reference = Ticket.objects.get().reference

    from django.test import Client

    stranger = Client().get(RECEIVED_URL)
    assert stranger.status_code == 200
    assert reference not in stranger.content.decode()
    assert reference in client.get(RECEIVED_URL).content.decode()


@pytest.mark.django_db
def test_double_post_of_the_same_submission_opens_one_ticket(client, django_capture_on_commit_callbacks):
    data = contact_data()

    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(CONTACT_URL, data)
        reference = Ticket.objects.get().reference
        second = client.post(CONTACT_URL, data)

    assert (first.status_code, second.status_code) == (302, 302)
    assert Ticket.objects.count() == 1
    assert Message.objects.filter(kind="public_enduser").count() == 1
    assert len(mail.outbox) == 1
    assert f'<strong class="reference">{reference}</strong>' in client.get(RECEIVED_URL).content.decode()


REQUIRED = ["This field is required."]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        (
            {"name": "", "email": "", "subject": "", "message": ""},
            {"name": REQUIRED, "email": REQUIRED, "subject": REQUIRED, "message": REQUIRED},
        ),
        ({"message": "   \n  "}, {"message": REQUIRED}),
        ({"email": "jane.example.com"}, {"email": ["Enter an email address with one @, such as name@example.com."]}),
        ({"email": "jane@"}, {"email": ["Enter an email address with one @, such as name@example.com."]}),
        ({"subject": "s" * 201}, {"subject": ["Ensure this value has at most 200 characters (it has 201)."]}),
        ({"name": "n" * 201}, {"name": ["Ensure this value has at most 200 characters (it has 201)."]}),
        (
            {"message": "m" * 20001},
            {"message": ["Ensure this value has at most 20000 characters (it has 20001)."]},
        ),
        (
            {"topic": "no-such-topic"},
            {"topic": ["Select a valid choice. That choice is not one of the available choices."]},
        ),
    ],
)
def test_invalid_fields_are_shown_on_the_form_and_nothing_is_stored(client, overrides, errors):
    response = client.post(CONTACT_URL, contact_data(**overrides, attachments=[png()]))

    assert response.status_code == 200
    assert response.context["form"].errors == errors
    for field, messages in errors.items():
        assert f'id="id_{field}_error"><li>{messages[0]}</li>' in response.content.decode().replace("&#x27;", "'")
    assert_nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("files", "limits", "error"),
    [
        ([png(f"shot{i}.png") for i in range(6)], {}, "At most 5 files can be attached."),
        (
            [SimpleUploadedFile("notes.txt", b"x" * 11, content_type="text/plain")],
            {"ATTACHMENT_MAX_BYTES": 10},
            "notes.txt is larger than 10\xa0bytes.",
        ),
        (
            [SimpleUploadedFile("setup.exe", b"MZ\x90\x00\x03", content_type="application/octet-stream")],
            {},
            "setup.exe is not a file type we accept.",
        ),
        (
            [SimpleUploadedFile("photo.png", b"MZ\x90\x00 not a png", content_type="image/png")],
            {},
            "photo.png is not a file type we accept.",
        ),
        (
            [png(), SimpleUploadedFile("empty.pdf", b"", content_type="application/pdf")],
            {},
            "The submitted file is empty.",
        ),
    ],
    ids=["too-many", "too-big", "exe", "fake-png", "empty"],
)
def test_rejected_attachments_are_a_field_error_and_nothing_is_stored(client, low_limits, files, limits, error):
    low_limits(**limits)

    response = client.post(CONTACT_URL, contact_data(attachments=files))

    assert response.status_code == 200
    assert response.context["form"].errors == {"attachments": [error]}
    assert f'id="id_attachments_error"><li>{error}</li>' in response.content.decode()
    assert_nothing_stored()


@pytest.mark.django_db
def test_a_failed_submission_keeps_its_submission_id_and_input(client):
    data = contact_data(email="nope")

    response = client.post(CONTACT_URL, data)

    body = response.content.decode()
    assert f'name="submission_id" value="{data["submission_id"]}"' in body
    assert 'value="Printer on fire"' in body


@pytest.mark.django_db
def test_a_malformed_submission_id_is_replaced_and_then_kept(client):
    failed = client.post(CONTACT_URL, contact_data(email="nope", submission_id="forged-id"))

    replaced = re.search(r'name="submission_id" value="([^"]+)"', failed.content.decode()).group(1)
    assert str(uuid.UUID(replaced)) == replaced
    client.post(CONTACT_URL, contact_data(submission_id=replaced))
    client.post(CONTACT_URL, contact_data(submission_id=replaced))
    assert list(Message.objects.filter(kind="public_enduser").values_list("external_id", flat=True)) == [replaced]


@pytest.mark.django_db
def test_filled_honeypot_looks_accepted_but_stores_nothing(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CONTACT_URL, contact_data(website="http://spam.example", attachments=[png()]))

    assert response.status_code == 302
    assert response["Location"] == RECEIVED_URL
    page = client.get(RECEIVED_URL)
    assert page.status_code == 200
    assert page.context["reference"] is None
    assert "SD-" not in page.content.decode()
    assert_nothing_stored()


@pytest.mark.django_db
def test_rate_limit_per_ip(client, low_limits):
    low_limits(WEBFORM_RATE_PER_IP=2)
    for n in range(2):
        ok = client.post(CONTACT_URL, contact_data(email=f"person{n}@example.com"), REMOTE_ADDR="198.51.100.7")
        assert ok.status_code == 302

    over = client.post(
        CONTACT_URL, contact_data(email="person3@example.com", attachments=[png()]), REMOTE_ADDR="198.51.100.7"
    )

    assert over.status_code == 429
    assert over.context["form"].non_field_errors() == ["Too many requests, try again later."]
    assert "Too many requests, try again later." in over.content.decode()
    assert (Ticket.objects.count(), Customer.objects.count(), Attachment.objects.count()) == (2, 2, 0)
    assert not Identity.objects.filter(value="person3@example.com").exists()
    assert media_files(settings.MEDIA_ROOT) == []
    other_ip = client.post(CONTACT_URL, contact_data(email="person4@example.com"), REMOTE_ADDR="198.51.100.8")
    assert other_ip.status_code == 302
    assert Ticket.objects.count() == 3


@pytest.mark.django_db
def test_rate_limit_per_email_ignores_the_forwarded_for_header(client, low_limits):
    low_limits(WEBFORM_RATE_PER_EMAIL=1)
    assert client.post(CONTACT_URL, contact_data(), REMOTE_ADDR="192.0.2.1").status_code == 302

    over = client.post(
        CONTACT_URL, contact_data(email="JANE@example.com"), REMOTE_ADDR="192.0.2.2", HTTP_X_FORWARDED_FOR="192.0.2.99"
    )

    assert over.status_code == 429
    assert over.context["form"].non_field_errors() == ["Too many requests, try again later."]
    assert (Ticket.objects.count(), Message.objects.filter(kind="public_enduser").count()) == (1, 1)


@pytest.mark.django_db
def test_header_injection_in_the_subject_reaches_no_header(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CONTACT_URL, contact_data(subject="Hello\r\nBcc: x@evil.example"))

    assert response.status_code == 302
    ticket = Ticket.objects.get()
    assert len(mail.outbox) == 1
    ack = mail.outbox[0]
    assert ack.bcc == []
    assert ack.subject == f"[{ticket.reference}] Hello Bcc: x@evil.example"
    sent = ack.message()
    assert sent.get_all("Bcc") is None
    assert "\r" not in sent["Subject"] and "\n" not in sent["Subject"]
    assert ack.recipients() == ["Jane Doe <jane@example.com>"]


@pytest.mark.django_db
def test_chinese_interface_by_cookie_and_accept_language(client):
    TopicFactory(slug="billing", name="Billing", name_zh_hans="账单")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    by_cookie = client.get(CONTACT_URL)

    from django.test import Client

    by_header = Client().get("/help/", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert (by_cookie.status_code, by_header.status_code) == (200, 200)
    assert '<html lang="zh-hans">' in by_cookie.content.decode()
    assert '<html lang="zh-hans">' in by_header.content.decode()
    assert '<option value="billing">账单</option>' in by_cookie.content.decode()


@pytest.mark.django_db
def test_chinese_submission_records_the_language(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"

    client.post(CONTACT_URL, contact_data())

    ticket = Ticket.objects.get()
    assert (ticket.language, ticket.customer.language) == ("zh-hans", "zh-hans")


@pytest.mark.django_db
def test_an_internationalised_address_is_taken_and_answered(client, django_capture_on_commit_callbacks):
    """RFC 6531: a non-ASCII mailbox name and an IDN domain, given in its ASCII form, stored as one identity."""
    body = client.get(CONTACT_URL).content.decode()
    # type="email" would make the browser refuse josé@...: the HTML definition of an address is ASCII.
    assert re.search(r'<input type="text" name="email"[^>]* inputmode="email"', body)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CONTACT_URL, contact_data(name="José Núñez", email="José@XN--BCHER-KVA.example"))

    assert response.status_code == 302
    ticket = Ticket.objects.get()
    assert list(Identity.objects.values_list("customer_id", "value")) == [(ticket.customer_id, "josé@bücher.example")]
    assert Message.objects.get(purpose="acknowledgement").recipients == ["josé@bücher.example"]
    assert [sent.to for sent in mail.outbox] == [["José Núñez <josé@xn--bcher-kva.example>"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("email", "error"),
    [
        ("josé\u202e@example.com", "The part before the @ contains a space or a character not allowed there."),
        ("josé@bücher..example", "The domain after the @ is not a valid domain name."),
        ('"josé"@example.com', "Quoted mailbox names are not accepted; write the address without quotes."),
    ],
)
def test_an_address_that_is_none_is_a_field_error(client, email, error):
    response = client.post(CONTACT_URL, contact_data(email=email))

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": [error]}
    assert_nothing_stored()
