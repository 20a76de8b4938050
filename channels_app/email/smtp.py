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

Deliveries do not open a connection per message: ``connection_send`` keeps
one open connection per process and thread (``SmtpConnections``), checks it
with NOOP before each reuse and opens a new one when it is gone; see
docs/architecture.md, "Outbound delivery".
"""

from __future__ import annotations

import atexit
import logging
import os
import smtplib
import threading
import time
from dataclasses import dataclass, field
from email import generator, policy
from email.headerregistry import Address
from email.utils import getaddresses
from io import BytesIO
from typing import Any

from celery import signals
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend

log = logging.getLogger(__name__)


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


# --- One connection per process and thread, reused ------------------------------------

# Defaults of SERVICEDESK_EMAIL["SMTP_CONNECTION_IDLE_SECONDS"] and ["SMTP_CONNECTION_MAX_MESSAGES"].
IDLE_SECONDS = 30
MAX_MESSAGES = 100

# Errors after which the SMTP conversation is known to be back between messages:
# the server answered (smtplib then sent RSET, or closed on 421), or nothing was
# sent at all. After any other error (a timeout, a dropped connection, a bug)
# nobody knows where the conversation stands, and the connection is dropped.
_CONVERSATION_INTACT = (
    smtplib.SMTPResponseException,
    smtplib.SMTPRecipientsRefused,
    SmtpUtf8Unsupported,
    InvalidAddress,
)


def _settings_key() -> tuple[object, ...]:
    """What a connection was opened with; a connection opened otherwise is not reused."""
    return (
        settings.EMAIL_HOST,
        settings.EMAIL_PORT,
        settings.EMAIL_HOST_USER,
        settings.EMAIL_HOST_PASSWORD,
        settings.EMAIL_USE_TLS,
        settings.EMAIL_USE_SSL,
        settings.EMAIL_SSL_KEYFILE,
        settings.EMAIL_SSL_CERTFILE,
        settings.EMAIL_TIMEOUT,
    )


@dataclass
class _Connection:
    """An open connection of ``backend`` and what decides whether it may carry the next message."""

    backend: EmailBackend
    key: tuple[object, ...]
    last_used: float = field(default_factory=time.monotonic)
    messages: int = 0
    expires_at: float = 0.0

    def alive(self) -> bool:
        """NOOP answered 250: the server is there and the conversation is between messages."""
        smtp = self.backend.connection
        if smtp is None or smtp.sock is None:
            return False
        try:
            code, _text = smtp.noop()
        except (OSError, smtplib.SMTPException):
            return False
        return code == 250

    def quit(self) -> None:
        """End the conversation politely (QUIT) and close; a server already gone is no error."""
        try:
            self.backend.close()
        except Exception:
            self.drop()

    def drop(self) -> None:
        """Close the socket without another command: the conversation's state is not known."""
        smtp = self.backend.connection
        self.backend.connection = None
        if smtp is not None:
            smtp.close()


class SmtpConnections:
    """One open SMTP connection per thread of this process, reused for the next messages.

    Opening a connection costs the TCP handshake, the greeting, EHLO and, with
    TLS and a password, STARTTLS, a second EHLO and AUTH; a message on an open
    connection costs MAIL, RCPT and DATA. So ``send`` keeps the connection
    after a message, and before the next one checks it with NOOP: a connection
    the server closed meanwhile (its idle timeout, a restart) is found dead
    before this message's MAIL FROM and replaced silently. Once MAIL FROM is
    sent, nothing here sends the message again: an error from then on is
    raised to the caller, and the delivery's claim decides what follows.

    A connection unused for ``SMTP_CONNECTION_IDLE_SECONDS`` is closed (QUIT)
    by a background thread, one that carried ``SMTP_CONNECTION_MAX_MESSAGES``
    messages after its last one; all of them when the process ends (atexit
    and Celery's worker shutdown signals). With an idle time of 0 every
    message has a connection of its own, opened and closed around it.

    SMTPUTF8 stays a property of each connection: the backend asks the
    connection it sends on (``has_extn``), which answers from that
    connection's own EHLO.
    """

    def __init__(self) -> None:
        self._forget()

    def _forget(self) -> None:
        # In a forked child the parent's connections are the parent's: the child
        # must never write on them, so it starts with none and no closing thread.
        self._condition = threading.Condition()
        self._idle: dict[int, _Connection] = {}  # by thread; a connection in use is in no one's hands but its thread's
        self._closer: threading.Thread | None = None

    def send(self, email_message: EmailMessage) -> None:
        """Send one message over this thread's connection, opening one when there is none fit to reuse.

        Raises what the backend raises (``smtplib`` errors, ``OSError``,
        ``SmtpUtf8Unsupported``, ``InvalidAddress``); the message is never sent twice here.
        """
        conf = getattr(settings, "SERVICEDESK_EMAIL", {})
        idle_seconds = int(conf.get("SMTP_CONNECTION_IDLE_SECONDS", IDLE_SECONDS))
        max_messages = max(1, int(conf.get("SMTP_CONNECTION_MAX_MESSAGES", MAX_MESSAGES)))
        thread = threading.get_ident()
        with self._condition:
            connection = self._idle.pop(thread, None)
        if connection is not None and not self._reusable(connection, idle_seconds):
            connection = None
        if connection is None:
            connection = self._open()
        try:
            connection.backend.send_messages([email_message])
        except BaseException as exc:
            if not isinstance(exc, _CONVERSATION_INTACT):
                connection.drop()
            elif idle_seconds > 0:
                self._keep(thread, connection, idle_seconds)
            else:
                connection.quit()
            raise
        connection.messages += 1
        if idle_seconds <= 0 or connection.messages >= max_messages:
            connection.quit()
        else:
            self._keep(thread, connection, idle_seconds)

    def close(self) -> int:
        """Close (QUIT) every connection not in use now; returns how many."""
        with self._condition:
            closing = list(self._idle.values())
            self._idle.clear()
            self._condition.notify_all()
        for connection in closing:
            connection.quit()
        return len(closing)

    def _reusable(self, connection: _Connection, idle_seconds: int) -> bool:
        if connection.key != _settings_key():
            connection.drop()  # the settings changed: another server, or other credentials
            return False
        if idle_seconds <= 0 or time.monotonic() - connection.last_used > idle_seconds:
            connection.quit()
            return False
        if not connection.alive():
            log.info("The open SMTP connection did not answer NOOP (closed by the server?); opening a new one")
            connection.drop()
            return False
        return True

    def _open(self) -> _Connection:
        backend = EmailBackend(fail_silently=False)
        try:
            backend.open()
        except BaseException:
            try:
                backend.close()  # a connection refused its login is still open
            except Exception:
                log.debug("Closing a connection that failed to open failed too", exc_info=True)
            raise
        return _Connection(backend=backend, key=_settings_key())

    def _keep(self, thread: int, connection: _Connection, idle_seconds: int) -> None:
        connection.last_used = time.monotonic()
        connection.expires_at = connection.last_used + idle_seconds
        with self._condition:
            self._idle[thread] = connection
            if self._closer is None:
                self._closer = threading.Thread(target=self._close_idle, name="smtp-idle-close", daemon=True)
                self._closer.start()
            self._condition.notify_all()

    def _close_idle(self) -> None:
        """The background thread: closes connections as they pass their idle time, ends when none is left."""
        while True:
            with self._condition:
                now = time.monotonic()
                expired = [thread for thread, connection in self._idle.items() if connection.expires_at <= now]
                closing = [self._idle.pop(thread) for thread in expired]
                if not closing:
                    if not self._idle:
                        self._closer = None
                        return
                    self._condition.wait(timeout=min(c.expires_at for c in self._idle.values()) - now)
                    continue
            for connection in closing:
                connection.quit()


connections = SmtpConnections()


def connection_send(email_message: EmailMessage) -> None:
    """Send ``email_message`` by SMTP over this thread's reused connection (``SmtpConnections.send``)."""
    connections.send(email_message)


def connections_close() -> int:
    """Close this process's idle SMTP connections (at shutdown; tests start from none)."""
    return connections.close()


def _close_at_shutdown(**_kwargs: Any) -> None:
    connections.close()


os.register_at_fork(after_in_child=connections._forget)
atexit.register(connections.close)
# A prefork pool's child ends with os._exit, which runs no atexit handler.
signals.worker_process_shutdown.connect(_close_at_shutdown, weak=False)
signals.worker_shutdown.connect(_close_at_shutdown, weak=False)
