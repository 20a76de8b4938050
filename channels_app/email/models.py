"""Inbound mail as received, and the mailboxes the desk polls.

Every message is stored raw (a file under ``raw-mail/``) before it is parsed,
so a mail the parser or the intake refuses is kept, shown in the quarantine and
can be processed again after a fix. See ``channels_app/email/services.py``.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models
from django.utils.translation import gettext_lazy as _

from servicedesk.core.secrets import credential_decrypt, credential_encrypt


class InboundEmail(models.Model):
    class Source(models.TextChoices):
        PIPE = "pipe", _("MTA pipe")
        IMAP = "imap", _("IMAP")
        HTTP = "http", _("HTTP")
        LMTP = "lmtp", _("LMTP")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        DUPLICATE = "duplicate", _("Duplicate")
        QUARANTINED = "quarantined", _("Quarantined")
        DISCARDED = "discarded", _("Discarded")

    raw_sha256 = models.CharField(_("SHA-256 of the raw message"), max_length=64, unique=True)
    raw_path = models.CharField(_("stored file"), max_length=200)
    size = models.PositiveIntegerField(_("size"))
    rfc_message_id = models.CharField(_("Message-ID"), max_length=255, null=True, blank=True, db_index=True)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    # Where the transport knows the message from, e.g. "imap:<account>:<uidvalidity>:<uid>".
    source_key = models.CharField(_("source key"), max_length=255, null=True, blank=True, unique=True)
    account = models.ForeignKey(
        "email_channel.MailAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.RECEIVED)
    quarantine_reason = models.CharField(_("quarantine reason"), max_length=500, blank=True)
    sender = models.CharField(_("sender"), max_length=320, blank=True)
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    received_at = models.DateTimeField(_("received"))
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    ticket = models.ForeignKey(
        "tickets.Ticket",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_emails",
    )
    message = models.ForeignKey(
        "tickets.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_emails",
    )
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)

    class Meta:
        verbose_name = _("inbound email")
        verbose_name_plural = _("inbound emails")
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="inbound_email_status_received")]

    def __str__(self) -> str:
        return f"{self.rfc_message_id or self.raw_sha256[:12]} ({self.status})"

    def raw_bytes(self) -> bytes:
        with default_storage.open(self.raw_path, "rb") as handle:
            return handle.read()


class MailAccount(models.Model):
    """A mailbox polled over IMAP.

    The password comes from the environment variable named in ``password_env``
    when one is set, so it never lands in the database; otherwise from
    ``password_encrypted``, encrypted with Fernet (``servicedesk/core/secrets.py``,
    key ``SD_CREDENTIALS_KEY`` or one derived from SECRET_KEY). Connections
    always use TLS or STARTTLS; there is no plaintext option.
    """

    class Security(models.TextChoices):
        TLS = "tls", _("TLS (IMAPS)")
        STARTTLS = "starttls", _("STARTTLS")

    name = models.CharField(_("name"), max_length=100, unique=True)
    host = models.CharField(_("host"), max_length=255)
    port = models.PositiveIntegerField(_("port"), default=993)
    security = models.CharField(_("security"), max_length=10, choices=Security.choices, default=Security.TLS)
    username = models.CharField(_("username"), max_length=255)
    password_env = models.CharField(
        _("password environment variable"),
        max_length=100,
        blank=True,
        help_text=_("Name of an environment variable holding the password (preferred)."),
    )
    password_encrypted = models.TextField(_("stored password (encrypted)"), blank=True)
    folder = models.CharField(_("folder"), max_length=255, default="INBOX")
    processed_folder = models.CharField(
        _("processed folder"),
        max_length=255,
        blank=True,
        help_text=_("Move processed mail here; leave blank to flag it as seen instead."),
    )
    queue = models.ForeignKey(
        "tickets.Queue",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mail_accounts",
    )
    is_active = models.BooleanField(_("active"), default=True)
    last_polled_at = models.DateTimeField(_("last polled"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("mail account")
        verbose_name_plural = _("mail accounts")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def password_set(self, password: str) -> None:
        self.password_encrypted = credential_encrypt(password)

    def password(self) -> str:
        """The password: from ``password_env`` when named, else the stored value ('' when none).

        Raises CredentialUnreadable when the stored value cannot be decrypted.
        """
        if self.password_env:
            return os.environ.get(self.password_env, "")
        return credential_decrypt(self.password_encrypted)
