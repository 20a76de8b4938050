"""Sending mail by SMTP to internationalised addresses (RFC 5890, RFC 6531).

A domain with non-ASCII letters (``user@bücher.example``) goes on the envelope
and in the headers in its ASCII form (IDNA, ``xn--bcher-kva.example``): every
server accepts that. A mailbox name with non-ASCII letters (``josé@...``) has
no ASCII form: it can only be sent with the SMTPUTF8 extension, with UTF-8 on
the envelope and in the headers. When the server does not offer SMTPUTF8 the
mail is not sent at all (``SmtpUtf8Unsupported``), rather than sent to a
mangled address.

Django's own SMTP backend encodes such a mailbox name as an RFC 2047 word
(``=?utf-8?b?...?=@example.com``), which is a different, undeliverable address;
``EmailBackend`` here replaces only that part of it.
"""

from __future__ import annotations

import smtplib
from email import generator, policy
from email.headerregistry import Address
from email.utils import getaddresses
from io import BytesIO
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend


class InvalidAddress(ValueError):
    """An address that cannot be written on an envelope (no @, or a domain that has no IDNA form)."""


class SmtpUtf8Unsupported(smtplib.SMTPNotSupportedError):
    """The address needs SMTPUTF8 and the server does not offer it; nothing was sent."""


def ascii_domain(domain: str) -> str:
    """``domain`` in the form SMTP and DNS use: IDNA (punycode) labels, lower case."""
    try:
        encoded = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidAddress(f"{domain!r} is not a valid internationalised domain name") from exc
    if not encoded or encoded.startswith(".") or ".." in encoded:
        raise InvalidAddress(f"{domain!r} is not a valid domain name")
    return encoded.lower()


def mailbox_parts(address: str) -> tuple[str, str]:
    """``(local part, ASCII domain)`` of a bare address ``local@domain``."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"{address!r} is not an email address")
    return local, ascii_domain(domain)


def needs_smtputf8(address: str) -> bool:
    """Whether ``address`` (bare) can only be sent with SMTPUTF8: its mailbox name is not ASCII."""
    local, _at, _domain = address.rpartition("@")
    return not local.isascii()


def header_address(display_name: str, address: str) -> str:
    """``Name <local@ascii-domain>`` for a To header, quoting the name where needed.

    The local part is kept as it is; only SMTPUTF8 can carry it when it is not ASCII.
    """
    local, domain = mailbox_parts(address)
    try:
        return str(Address(display_name=display_name, username=local, domain=domain))
    except ValueError as exc:
        raise InvalidAddress(str(exc)) from exc


def _envelope(value: str) -> str:
    """The bare envelope address (MAIL FROM, RCPT TO) of a header-style address."""
    pairs = getaddresses([value])
    if len(pairs) != 1 or not pairs[0][1]:
        raise InvalidAddress(f"{value!r} is not one email address")
    local, domain = mailbox_parts(pairs[0][1])
    return f"{local}@{domain}"


def _utf8_bytes(email_message: EmailMessage) -> bytes:
    """The message with its recipient headers in UTF-8, serialised as RFC 6532 allows."""
    message = email_message.message()
    for name, values in (("To", email_message.to), ("Cc", email_message.cc)):
        if values and name in message:
            rebuilt = []
            for display_name, address in getaddresses(values):
                rebuilt.append(header_address(display_name, address))
            message.replace_header(name, ", ".join(rebuilt))
    buffer = BytesIO()
    generator.BytesGenerator(buffer, mangle_from_=False, policy=policy.SMTPUTF8.clone(linesep="\r\n")).flatten(message)
    return buffer.getvalue()


class EmailBackend(DjangoSmtpBackend):
    """Django's SMTP backend with IDNA domains and SMTPUTF8 mailbox names (see the module)."""

    def _send(self, email_message: Any) -> bool:
        if not email_message.recipients():
            return False
        connection = self.connection
        assert connection is not None, "send_messages opens the connection first"
        from_address = _envelope(email_message.from_email)
        recipients = [_envelope(value) for value in email_message.recipients()]
        utf8 = any(needs_smtputf8(address) for address in (from_address, *recipients))
        try:
            if not utf8:
                data = email_message.message().as_bytes(linesep="\r\n")
                connection.sendmail(from_address, recipients, data)
                return True
            connection.ehlo_or_helo_if_needed()
            if not connection.has_extn("smtputf8"):
                raise SmtpUtf8Unsupported(
                    "The address has a non-ASCII mailbox name and the mail server does not offer SMTPUTF8."
                )
            connection.sendmail(from_address, recipients, _utf8_bytes(email_message), mail_options=["SMTPUTF8"])
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True
