"""Outbound mail: agent replies and acknowledgements, with threading headers.

Message-IDs we send carry an HMAC of the message's id, so a forged one can be
told apart from ours. Headers never carry unsanitised input: every value built
from customer text goes through ``header_safe`` (no CR/LF).
"""

from __future__ import annotations

import smtplib
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils import translation
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_noop

from channels_app.email.message_ids import message_id_for_pk, message_id_is_ours
from channels_app.email.smtp import InvalidAddress, SmtpUtf8Unsupported, connection_send, header_address
from servicedesk.core.datetimes import format_instant, viewer_time_zone
from servicedesk.core.text import header_safe
from servicedesk.tickets.models import IdentityKind, Message, MessageKind, Ticket
from servicedesk.tickets.outbound import DeliveryError, DeliveryReceipt
from servicedesk.tickets.services.acknowledgements import requests_url
from servicedesk.tickets.services.customers import identity_mark_bouncing
from servicedesk.tickets.threading import reply_token_for

# Reasons shown to agents next to a message that could not be sent; stored in
# English and translated when shown (Message.delivery_error_display).
NO_ADDRESS = gettext_noop("The customer has no email address to write to.")
UNUSABLE_ADDRESS = gettext_noop(
    "The customer's email address cannot be used: its domain is not a valid (internationalised) domain name."
)
NEEDS_SMTPUTF8 = gettext_noop(
    "The customer's email address has non-ASCII letters before the @, and the mail server does not accept "
    "such addresses (it does not offer SMTPUTF8). Nothing was sent."
)


def message_id_for(message: Message) -> str:
    """Our Message-ID for ``message``: stable, and signed so forgeries are recognisable."""
    return message_id_for_pk(message.pk)


def requests_footer(ticket: Ticket) -> tuple[str, str]:
    """The line under a reply that leads to all the customer's requests, in their language: (text, HTML)."""
    url = requests_url()
    with translation.override(ticket.language or ticket.customer.language or settings.LANGUAGE_CODE):
        line = gettext("See all your requests: %(url)s")
    before, _url, after = line.partition("%(url)s")
    return line % {"url": url}, format_html(
        '<p style="color:#555">{}<a href="{}">{}</a>{}</p>', before, url, url, after
    )


def _from_address(message: Message) -> str:
    queue_address = message.ticket.queue.email_address if message.ticket.queue_id else ""
    return queue_address or settings.DEFAULT_FROM_EMAIL


def reply_address_for(message: Message) -> str:
    """``local+<reply token>@domain`` of the queue's (or the support) address, so a
    reply finds its ticket even when the customer's mail program drops the
    threading headers."""
    _name, address = parseaddr(message.ticket.queue.email_address or settings.SERVICEDESK["SUPPORT_ADDRESS"])
    local, _at, domain = address.partition("@")
    return f"{local.split('+', 1)[0]}+{reply_token_for(message.ticket)}@{domain}"


def customer_address(message: Message) -> str | None:
    """The customer's first email address that does not bounce, or None."""
    values = list(
        message.ticket.customer.identities.filter(kind=IdentityKind.EMAIL, is_bouncing=False)
        .order_by("pk")
        .values_list("value", flat=True)[:1]
    )
    return values[0] if values else None


def deliver_by_email(message: Message, *, address: str | None = None) -> DeliveryReceipt:
    """Send a public message (agent reply or acknowledgement) to the ticket's customer.

    ``address``: where to send instead of the customer's own address (a chat
    visitor's address given in the widget, which is no identity of theirs).
    """
    ticket = message.ticket
    address = address or customer_address(message)
    if not address:
        raise DeliveryError(NO_ADDRESS, temporary=False)
    recipients = [address]
    try:
        to = header_address(header_safe(ticket.customer.name, max_length=100), recipients[0])
    except InvalidAddress as exc:
        raise DeliveryError(UNUSABLE_ADDRESS, temporary=False) from exc
    subject = header_safe(f"[{ticket.reference}] {ticket.subject}", max_length=250)
    if message.kind == MessageKind.PUBLIC_AGENT:
        subject = "Re: " + subject
    previous: list[str] = [
        value
        for value in Message.objects.filter(
            ticket=ticket, rfc_message_id__isnull=False, created_at__lte=message.created_at
        )
        .exclude(pk=message.pk)
        .order_by("-created_at", "-pk")
        .values_list("rfc_message_id", flat=True)[:10]
        if value
    ]
    headers: dict[str, str] = {"Message-ID": message_id_for(message), "X-ServiceDesk-Ticket": ticket.reference or ""}
    if previous:
        headers["In-Reply-To"] = previous[0]
        headers["References"] = " ".join(reversed(previous))
    if message.kind == MessageKind.SYSTEM:
        headers["Auto-Submitted"] = "auto-replied"
        headers["X-Auto-Response-Suppress"] = "All"
        headers["Precedence"] = "auto_reply"
    body = message.text
    html = message.html
    if message.kind == MessageKind.PUBLIC_AGENT:
        # Every reply offers the customer their whole history (docs/help-centre.md).
        footer, footer_html = requests_footer(ticket)
        body = body.rstrip("\n") + "\n\n" + footer + "\n"
        if html:
            html = html + footer_html
    if message.quote_history:
        body = body.rstrip("\n") + "\n\n" + quoted_history(message)
    mail = EmailMultiAlternatives(
        subject=subject,
        body=body,
        from_email=_from_address(message),
        to=[to],
        headers=headers,
        reply_to=[reply_address_for(message)],
    )
    if html:
        mail.attach_alternative(html, "text/html")
    for attachment in message.attachments.all():
        with attachment.file.open("rb") as fh:
            mail.attach(attachment.filename, fh.read(), attachment.content_type)
    try:
        if _is_smtp():
            # Over the worker's open connection; a message is never sent twice
            # here, whatever fails (docs/architecture.md, "Outbound delivery").
            connection_send(mail)
        else:
            get_connection().send_messages([mail])
    except SmtpUtf8Unsupported as exc:
        # Nothing was sent and the address may well be right: not a bounce.
        raise DeliveryError(NEEDS_SMTPUTF8, temporary=False) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _text in exc.recipients.values()]
        reason = "; ".join(
            f"{parseaddr(rcpt)[1] or rcpt}: {code} {_smtp_text(text)}" for rcpt, (code, text) in exc.recipients.items()
        )
        if all(400 <= code < 500 for code in codes):
            raise DeliveryError(reason, temporary=True) from exc
        identity_mark_bouncing(kind=IdentityKind.EMAIL, value=recipients[0])
        raise DeliveryError(reason, temporary=False) from exc
    except smtplib.SMTPResponseException as exc:
        reason = f"{exc.smtp_code} {_smtp_text(exc.smtp_error)}"
        if 400 <= exc.smtp_code < 500:
            raise DeliveryError(reason, temporary=True) from exc
        identity_mark_bouncing(kind=IdentityKind.EMAIL, value=recipients[0])
        raise DeliveryError(reason, temporary=False) from exc
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"Mail server unreachable: {exc}", temporary=True) from exc
    return DeliveryReceipt(rfc_message_id=headers["Message-ID"], recipients=(recipients[0],))


QUOTED_MESSAGES = 10


def quoted_history(message: Message) -> str:
    """The conversation before ``message``, newest first, quoted with "> " as mail
    programs do: what the customer and the agents wrote, not notes or notices."""
    earlier = (
        Message.objects.filter(
            ticket=message.ticket,
            kind__in=[MessageKind.PUBLIC_ENDUSER, MessageKind.PUBLIC_AGENT],
            created_at__lte=message.created_at,
        )
        .exclude(pk=message.pk)
        .select_related("author_user", "author_customer")
        .order_by("-created_at", "-pk")[:QUOTED_MESSAGES]
    )
    blocks = []
    zone = viewer_time_zone(message.ticket.customer)  # the reader's zone, else the desk's
    for item in earlier:
        when = format_instant(item.created_at, zone)
        quoted = "\n".join(f"> {line}" if line else ">" for line in item.text.rstrip("\n").split("\n"))
        blocks.append(f"On {when}, {item.author_name} wrote:\n{quoted}")
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _smtp_text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


SMTP_BACKEND = "channels_app.email.smtp.EmailBackend"


def _is_smtp() -> bool:
    # Django's own SMTP backend names SMTP too; ours (which connection_send
    # uses) adds what it lacks. Other backends (files, memory) open their own.
    return settings.EMAIL_BACKEND in (SMTP_BACKEND, "django.core.mail.backends.smtp.EmailBackend")


__all__ = ["deliver_by_email", "message_id_for", "message_id_is_ours", "reply_address_for"]
