"""Email addresses, internationalised ones included (RFC 6531, RFC 6532, RFC 5890).

``email_normalize`` is the one canonical form every inbound path stores and
matches: the mail channel's sender, the web form, the API, the desk and the
importer (through ``identity_normalize``), the form field below and the
API's serializer field (``core/api_fields.py``). The canonical form is:

- the mailbox name (local part) as given, in Unicode NFC and lower case (the
  desk has always matched addresses without regard to case);
- the domain in lower case and in its Unicode form (U-labels):
  ``user@xn--bcher-kva.example`` and ``user@Bücher.example`` are both
  ``user@bücher.example``. Outbound mail writes the domain back in its ASCII
  form (``channels_app/email/smtp.py``), with the same codec.

IDNA here is Python's codec (IDNA 2003), the one the SMTP path encodes with,
so every stored domain can be sent to; a domain only IDNA 2008 accepts
(``xn--strae-oqa.de``) is refused. Refused as well: control, format and
space characters, a quoted mailbox name, a missing ``@``, an empty label, a
domain over 253 characters in ASCII form, and a domain without a dot or with a
numeric top-level label. A mailbox name over RFC 5321's 64 bytes is accepted,
as it always was here: long generated names (list and bounce addresses) exist.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

MAX_LENGTH = 320
MAX_DOMAIN_LENGTH = 253

# RFC 5322 atext; any non-ASCII character RFC 6532 allows is checked by category below.
_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Joiners some scripts need inside words (RFC 5892 CONTEXTJ); every other format character is refused.
_JOINERS = frozenset("\u200c\u200d")


class InvalidEmailAddress(ValueError):
    """An address that is not one; ``message`` says why, for the person who typed it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _local_char_ok(char: str) -> bool:
    if char.isascii():
        return char in _ATEXT or char == "."
    category = unicodedata.category(char)
    # C*: control, format, surrogate, private use, unassigned; Z*: spaces and separators.
    return char in _JOINERS or not (category.startswith("C") or category.startswith("Z"))


def _local_normalize(local: str) -> str:
    local = unicodedata.normalize("NFC", unicodedata.normalize("NFC", local).lower())
    if local.startswith('"'):
        raise InvalidEmailAddress(_("Quoted mailbox names are not accepted; write the address without quotes."))
    if not all(_local_char_ok(char) for char in local):
        raise InvalidEmailAddress(_("The part before the @ contains a space or a character not allowed there."))
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEmailAddress(_("The part before the @ cannot begin or end with a dot or have two in a row."))
    return local


def domain_to_ascii(domain: str) -> str:
    """``domain`` in lower case with IDNA (``xn--``) labels, checked label by label.

    Raises ``InvalidEmailAddress`` when it is not a domain name an address can have.
    """
    invalid = _("The domain after the @ is not a valid domain name.")
    try:
        encoded = domain.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidEmailAddress(invalid) from None
    labels = encoded.split(".")
    if len(encoded) > MAX_DOMAIN_LENGTH or not all(_LDH_LABEL.match(label) for label in labels):
        raise InvalidEmailAddress(invalid)
    if len(labels) < 2:
        raise InvalidEmailAddress(_("The domain after the @ needs a dot, as in example.com."))
    if labels[-1].isdigit():
        raise InvalidEmailAddress(invalid)
    return encoded


def domain_to_unicode(domain: str) -> str:
    """``domain`` in lower case with its IDNA labels in Unicode (``xn--bcher-kva`` is ``bücher``)."""
    encoded = domain_to_ascii(domain)
    try:
        decoded = encoded.encode("ascii").decode("idna")
    except UnicodeError:
        # An xn-- label that is not the IDNA form of anything (bad Punycode, or no round trip).
        raise InvalidEmailAddress(_("The domain after the @ is not a valid domain name.")) from None
    return decoded.lower()


def email_normalize(value: str) -> str:
    """The canonical form of an email address (see the module), or ``InvalidEmailAddress``.

    Idempotent: the canonical form of a canonical form is itself.
    """
    value = (value or "").strip()
    if not value:
        raise InvalidEmailAddress(_("Enter an email address."))
    if len(value) > MAX_LENGTH:
        raise InvalidEmailAddress(_("The email address is too long."))
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmailAddress(_("Enter an email address with one @, such as name@example.com."))
    if "@" in local or domain.startswith("["):
        raise InvalidEmailAddress(_("Enter an email address with one @, such as name@example.com."))
    return f"{_local_normalize(local)}@{domain_to_unicode(domain)}"


def email_key(value: str) -> str:
    """What to compare two addresses by: the canonical form, or for what is no address the text
    stripped and in lower case. ``user@xn--bcher-kva.example`` (as a mail server reports it) and
    ``user@bücher.example`` (as the desk stores it) have the same key."""
    try:
        return email_normalize(value)
    except InvalidEmailAddress:
        return (value or "").strip().lower()


def email_search_term(term: str) -> str:
    """What to look for among stored addresses when someone searches for ``term`` (a whole address or
    a part): lower case, NFC, and every ``xn--`` label in its Unicode form, as the addresses are stored,
    so a search for ``xn--bcher-kva`` finds ``user@bücher.example``."""
    term = unicodedata.normalize("NFC", (term or "").strip().lower())
    if "xn--" not in term:
        return term
    labels = []
    for label in term.split("."):
        head, at, tail = label.rpartition("@")
        if tail.startswith("xn--"):
            with contextlib.suppress(UnicodeError):  # not an IDNA label: searched for as typed
                tail = tail.encode("ascii").decode("idna").lower()
        labels.append(f"{head}{at}{tail}")
    return ".".join(labels)


def validate_email_address(value: Any) -> None:
    """A Django validator: ``ValidationError`` with the reason when ``value`` is not an address."""
    try:
        email_normalize(str(value))
    except InvalidEmailAddress as exc:
        raise ValidationError(exc.message, code="invalid") from None


class EmailAddressFormField(forms.CharField):
    """A form field for an address, internationalised ones included; cleans to the canonical form."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_LENGTH)
        # Not type="email": browsers refuse a non-ASCII mailbox name there (the HTML definition is ASCII only).
        kwargs.setdefault(
            "widget", forms.TextInput(attrs={"inputmode": "email", "autocomplete": "email", "spellcheck": "false"})
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        text = super().to_python(value)
        if not text:
            return ""
        try:
            return email_normalize(text)
        except InvalidEmailAddress as exc:
            raise ValidationError(exc.message, code="invalid") from None
