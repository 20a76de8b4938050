"""A signed-in customer adds an email address or a phone number to their record by proving it
(docs/help-centre.md, "Your addresses").

- An email address gets a link (valid ``VERIFY_MINUTES``, single use, stored as
  a digest; opening it shows a button, the button proves it).
- A phone number gets a six-digit code by SMS (``servicedesk.core.sms``);
  five wrong tries spend it.
- Proven, the address becomes the customer's, unless another record holds it:
  then nothing moves and the two records are suggested to agents as a merge
  (``servicedesk.tickets.services.customers.identity_proven``).
- ``VERIFY_PER_HOUR`` checks a customer may start an hour.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.errors import ApplicationError
from servicedesk.core.ratelimit import rate_count
from servicedesk.core.sms import SmsNotSent, sms_send
from servicedesk.tickets.models import Customer, Identity, IdentityKind
from servicedesk.tickets.services.customers import InvalidIdentity, identity_normalize, identity_proven

from .models import IdentityVerification

VERIFY_MINUTES = 30
VERIFY_PER_HOUR = 5
CODE_TRIES = 5


def _digest(value: str, salt: str = "") -> str:
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()


def verification_start(*, customer: Customer, kind: str, value: str, language: str = "") -> IdentityVerification:
    """Send the link or the code for ``value``; ApplicationError (with the field) when it cannot be."""
    if kind not in (IdentityKind.EMAIL, IdentityKind.PHONE):
        raise ApplicationError(_("Add an email address or a phone number."), field="kind")
    field = "email" if kind == IdentityKind.EMAIL else "phone"
    try:
        value = identity_normalize(kind=kind, value=value)
    except InvalidIdentity as exc:
        raise ApplicationError(str(exc.message), field=field) from None
    if Identity.objects.filter(customer=customer, kind=kind, value=value).exists():
        raise ApplicationError(_("This is one of your addresses already."), field=field)
    counted = rate_count(scope="help-verify", key=str(customer.pk), window_seconds=3600)
    if counted is not None and counted.attempts > VERIFY_PER_HOUR:
        raise ApplicationError(_("Too many checks started this hour; try again later."), field=field)
    now = timezone.now()
    salt = secrets.token_hex(8)
    if kind == IdentityKind.EMAIL:
        secret = secrets.token_urlsafe(32)
        digest = _digest(secret)
    else:
        secret = f"{secrets.randbelow(1_000_000):06d}"
        digest = _digest(secret, salt)
    check = IdentityVerification.objects.create(
        customer=customer,
        kind=kind,
        value=value,
        digest=digest,
        salt=salt if kind == IdentityKind.PHONE else "",
        created_at=now,
        expires_at=now + timedelta(minutes=VERIFY_MINUTES),
    )
    chosen = language or customer.language or settings.LANGUAGE_CODE
    if kind == IdentityKind.EMAIL:
        from .tasks import verification_mail_task

        check_id = check.pk
        transaction.on_commit(lambda: task_enqueue(verification_mail_task, check_id, secret, chosen))
    else:
        with translation.override(chosen):
            body = _("Your code to add this number to your requests: %(code)s. It works for %(minutes)d minutes.") % {
                "code": secret,
                "minutes": VERIFY_MINUTES,
            }
        try:
            sms_send(to=value, body=body)
        except SmsNotSent:
            check.delete()
            raise ApplicationError(_("The code could not be sent; try again later."), field="phone") from None
    return check


def verification_mail(*, check_id: int, token: str, language: str = "") -> bool:
    check = IdentityVerification.objects.select_related("customer").filter(pk=check_id, used_at__isnull=True).first()
    if check is None or _digest(token) != check.digest:
        return False
    with translation.override(language or settings.LANGUAGE_CODE):
        context = {
            "customer_name": check.customer.name,
            "link": f"{settings.SITE_URL}/help/account/verify/{token}/",
            "minutes": VERIFY_MINUTES,
        }
        subject = _("Add this address to your requests")
        body = render_to_string("web/verify_mail.txt", context).strip() + "\n"
    return bool(send_mail(subject, body, None, [check.value]))


def _prove(check: IdentityVerification) -> list[Customer]:
    return identity_proven(customer=check.customer, kind=check.kind, value=check.value)


def verification_link_valid(token: str) -> IdentityVerification | None:
    if not token or len(token) > 100:
        return None
    return IdentityVerification.objects.filter(
        digest=_digest(token), kind=IdentityKind.EMAIL, used_at__isnull=True, expires_at__gt=timezone.now()
    ).first()


def verification_link_use(token: str) -> IdentityVerification | None:
    """Prove the address of the link ``token`` once; None when expired, used or unknown."""
    if not token or len(token) > 100:
        return None
    now = timezone.now()
    with transaction.atomic():
        claimed = IdentityVerification.objects.filter(
            digest=_digest(token), kind=IdentityKind.EMAIL, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        if not claimed:
            return None
        check = IdentityVerification.objects.select_related("customer").get(digest=_digest(token))
        _prove(check)
    return check


def verification_code_use(*, customer: Customer, check_id: int, code: str) -> IdentityVerification:
    """Prove a number with the code sent to it; ApplicationError for a wrong, spent or expired code."""
    now = timezone.now()
    check = IdentityVerification.objects.filter(
        pk=check_id, customer=customer, kind=IdentityKind.PHONE, used_at__isnull=True, expires_at__gt=now
    ).first()
    if check is None or check.attempts >= CODE_TRIES:
        raise ApplicationError(_("This code has expired; ask for a new one."), field="code")
    if not secrets.compare_digest(_digest((code or "").strip(), check.salt), check.digest):
        # Counted before the refusal: five wrong tries spend the code.
        IdentityVerification.objects.filter(pk=check.pk).update(attempts=check.attempts + 1)
        raise ApplicationError(_("That code is not the one we sent."), field="code")
    with transaction.atomic():
        if not IdentityVerification.objects.filter(pk=check.pk, used_at__isnull=True).update(used_at=now):
            raise ApplicationError(_("This code has expired; ask for a new one."), field="code")
        _prove(check)
    return check
