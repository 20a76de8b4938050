"""Customers sign in to the help centre by an emailed link, without a password (docs/help-centre.md).

- ``signin_request``: a customer asks for a link at ``/help/sign-in/``. The
  answer is the same whether or not the address is a customer's (nobody can
  learn who is one); a known address gets a single-use link, valid
  ``HELP_SIGNIN_LINK_MINUTES``, by mail (a task, so the answer takes as long
  either way). Links asked for per address and window beyond
  ``HELP_SIGNIN_PER_ADDRESS`` are not sent; a client IP beyond
  ``HELP_SIGNIN_PER_IP`` is refused (429).
- ``signin_link_use``: the link's page signs the browser in with a button
  (mail scanners open links: opening it changes nothing). The link is used
  once; expired, used or unknown links sign nobody in.
- ``portal_customer``: the customer a request's ``sd_help`` cookie signs in,
  as a viewer the access rules take (``PortalCustomer``). It is separate from
  Django's users and sessions: an agent signed in to the desk is nobody here,
  and a customer signed in here is nobody in the desk.
- ``customer_sign_out`` ends one browser's session, ``customer_sign_out_everywhere``
  all of the customer's.

Only SHA-256 digests of links and session keys are stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone, translation

from servicedesk.core.enqueue import task_enqueue
from servicedesk.core.ratelimit import rate_count
from servicedesk.tickets.access import customer_root
from servicedesk.tickets.models import Customer, Identity, IdentityKind
from servicedesk.tickets.services.customers import InvalidIdentity, identity_normalize

from .models import CustomerSession, SignInLink

log = logging.getLogger(__name__)

COOKIE = "sd_help"
COOKIE_PATH = "/"
# A session's last sighting is written at most this often.
SEEN_EVERY = timedelta(minutes=10)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class PortalCustomer:
    """A customer signed in to the help centre, as the access rules take a viewer
    (``servicedesk.tickets.access``: no role, acting as ``customer``)."""

    customer: Customer
    session_id: int
    is_authenticated: bool = True
    is_superuser: bool = False
    pk: None = None
    _sd_group_names: frozenset[str] = field(default_factory=frozenset)

    @property
    def _sd_customer(self) -> Customer:
        return self.customer


class SignInRefused(Exception):
    """Too many sign-in links asked for from one client IP."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many sign-in links asked for.")
        self.retry_after = retry_after


def _customer_of_address(address: str) -> Customer | None:
    identity = Identity.objects.filter(kind=IdentityKind.EMAIL, value=address).select_related("customer").first()
    if identity is None:
        return None
    return customer_root(identity.customer)


def signin_request(*, address: str, client_ip: str, language: str = "") -> None:
    """Mail a sign-in link to ``address`` when it is a customer's; SignInRefused when the IP is over its limit.

    Says nothing about whether a link was sent: the caller answers the same either way.
    """
    conf = settings.SERVICEDESK
    window = conf["HELP_SIGNIN_WINDOW_SECONDS"]
    per_ip = rate_count(scope="help-signin-ip", key=client_ip or "unknown", window_seconds=window)
    if per_ip is not None and per_ip.attempts > conf["HELP_SIGNIN_PER_IP"]:
        raise SignInRefused(per_ip.retry_after)
    try:
        address = identity_normalize(kind=IdentityKind.EMAIL, value=address)
    except InvalidIdentity:
        return
    per_address = rate_count(scope="help-signin-address", key=address, window_seconds=window)
    over = per_address is not None and per_address.attempts > conf["HELP_SIGNIN_PER_ADDRESS"]
    customer = None if over else _customer_of_address(address)
    link_id, token = 0, ""
    if customer is not None:
        now = timezone.now()
        token = secrets.token_urlsafe(32)
        link = SignInLink.objects.create(
            customer=customer,
            address=address,
            digest=_digest(token),
            created_at=now,
            expires_at=now + timedelta(minutes=conf["HELP_SIGNIN_LINK_MINUTES"]),
        )
        link_id = link.pk
    elif over:
        log.warning("Sign-in links for one address over the limit: not sent")
    # The mail goes from a task either way, so the answer takes as long for an unknown address.
    from .tasks import signin_link_mail_task

    chosen = language or ""
    transaction.on_commit(lambda: task_enqueue(signin_link_mail_task, link_id, token, chosen))


def signin_link_mail(*, link_id: int, token: str, language: str = "") -> bool:
    """Send the sign-in link ``link_id`` (its raw ``token``); False when there is nothing to send."""
    link = SignInLink.objects.select_related("customer").filter(pk=link_id, used_at__isnull=True).first()
    if link is None or not token or _digest(token) != link.digest:
        return False
    customer = link.customer
    chosen = language or customer.language or settings.LANGUAGE_CODE
    url = f"{settings.SITE_URL}/help/sign-in/{token}/"
    with translation.override(chosen):
        context = {
            "customer_name": customer.name,
            "link": url,
            "minutes": settings.SERVICEDESK["HELP_SIGNIN_LINK_MINUTES"],
        }
        subject = render_to_string("web/signin_link_subject.txt", context).strip()
        body = render_to_string("web/signin_link_mail.txt", context).strip() + "\n"
    return bool(send_mail(subject, body, None, [link.address]))


def signin_link_valid(token: str) -> SignInLink | None:
    """The unused, unexpired link ``token`` names, else None (nothing changes)."""
    if not token or len(token) > 100:
        return None
    return SignInLink.objects.filter(digest=_digest(token), used_at__isnull=True, expires_at__gt=timezone.now()).first()


def signin_link_use(*, token: str, user_agent: str = "") -> str | None:
    """Use the link ``token`` once: a new session's key, else None (expired, used or unknown)."""
    now = timezone.now()
    if not token or len(token) > 100:
        return None
    digest = _digest(token)
    with transaction.atomic():
        # The claim decides: of two uses at once, only the one whose UPDATE changed the row signs in.
        if not SignInLink.objects.filter(digest=digest, used_at__isnull=True, expires_at__gt=now).update(used_at=now):
            return None
        link = SignInLink.objects.select_related("customer").get(digest=digest)
        # The links asked for before this one are spent with it.
        SignInLink.objects.filter(customer_id=link.customer_id, used_at__isnull=True).update(used_at=now)
        key = secrets.token_urlsafe(32)
        CustomerSession.objects.create(
            customer=customer_root(link.customer),
            digest=_digest(key),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(days=settings.SERVICEDESK["HELP_SESSION_DAYS"]),
            user_agent=user_agent[:300],
        )
    return key


def portal_customer(request: HttpRequest) -> PortalCustomer | None:
    """The customer the request's help-centre cookie signs in (following merges), else None."""
    cached = getattr(request, "_sd_portal_customer", None)
    if cached is not None:
        return cached or None
    found: PortalCustomer | None = None
    key = request.COOKIES.get(COOKIE, "")
    if key and len(key) <= 100:
        now = timezone.now()
        session = (
            CustomerSession.objects.select_related("customer").filter(digest=_digest(key), expires_at__gt=now).first()
        )
        if session is not None:
            found = PortalCustomer(customer=customer_root(session.customer), session_id=session.pk)
            if now - session.last_seen_at > SEEN_EVERY:
                CustomerSession.objects.filter(pk=session.pk).update(last_seen_at=now)
    request._sd_portal_customer = found or False  # type: ignore[attr-defined]
    return found


def session_cookie_set(response: HttpResponse, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key,
        max_age=settings.SERVICEDESK["HELP_SESSION_DAYS"] * 86400,
        path=COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def session_cookie_clear(response: HttpResponse) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, samesite="Lax")


def customer_sign_out(request: HttpRequest) -> None:
    """End this browser's help-centre session."""
    key = request.COOKIES.get(COOKIE, "")
    if key and len(key) <= 100:
        CustomerSession.objects.filter(digest=_digest(key)).delete()


def customer_sign_out_everywhere(viewer: PortalCustomer) -> int:
    """End every help-centre session of the customer (and of the records merged into it); how many."""
    merged = Customer.objects.filter(merged_into=viewer.customer).values("pk")
    deleted, _rows = CustomerSession.objects.filter(customer_id=viewer.customer.pk).delete()
    more, _rows = CustomerSession.objects.filter(customer_id__in=merged).delete()
    return int(deleted + more)


def signin_expired_delete(*, now: datetime | None = None) -> int:
    """Forget links and sessions that expired a day ago (the beat)."""
    cutoff = (now or timezone.now()) - timedelta(days=1)
    links, _rows = SignInLink.objects.filter(expires_at__lt=cutoff).delete()
    sessions, _rows = CustomerSession.objects.filter(expires_at__lt=cutoff).delete()
    return int(links + sessions)
