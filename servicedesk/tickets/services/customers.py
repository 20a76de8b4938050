"""Customer records and their identities."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from servicedesk.core.email_address import InvalidEmailAddress, email_normalize
from servicedesk.core.errors import ApplicationError
from servicedesk.core.prepared import PreparedQuery
from servicedesk.core.text import clean_line, header_safe
from servicedesk.tickets.events import Actor, event_build
from servicedesk.tickets.locks import customer_lock, identity_first_use_lock
from servicedesk.tickets.models import (
    Customer,
    CustomerEvent,
    CustomerMerge,
    Identity,
    IdentityKind,
    MergeSuggestion,
    Organization,
    Session,
    Survey,
    Ticket,
    TicketEvent,
)

log = logging.getLogger(__name__)


class InvalidIdentity(ApplicationError):
    pass


def identity_normalize(*, kind: str, value: str) -> str:
    """The canonical form of an address: email as ``core.email_address.email_normalize`` (lower
    case, the domain in Unicode, internationalised addresses included), E.164 phone."""
    value = (value or "").strip()
    if kind == IdentityKind.EMAIL:
        try:
            return email_normalize(value)
        except InvalidEmailAddress as exc:
            raise InvalidIdentity(exc.message, field="email") from None
    if kind == IdentityKind.PHONE:
        # Imported here: its metadata costs a mail command's start-up about 0.05 s,
        # and mail has no phone numbers (docs/performance.md, "Start-up").
        import phonenumbers

        try:
            # A number written the national way ("086 123 4567", "00353...") in the desk's region.
            number = phonenumbers.parse(value, settings.SERVICEDESK.get("PHONE_REGION") or None)
        except phonenumbers.NumberParseException:
            raise InvalidIdentity(
                _("Enter a phone number in international form, such as +353861234567."), field="phone"
            ) from None
        if not phonenumbers.is_possible_number(number):
            raise InvalidIdentity(_("This is not a possible phone number."), field="phone")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind in (IdentityKind.CHAT, IdentityKind.FORUM):
        if not value or len(value) > 320:
            raise InvalidIdentity(_("The identity is missing or too long."))
        return value
    raise InvalidIdentity(_("Unknown kind of identity."))


def customer_root(customer: Customer) -> Customer:
    """Follow merges to the record that now stands for the person."""
    seen = set()
    while customer.merged_into_id and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def customer_find_by_identity(*, kind: str, value: str) -> Customer | None:
    value = identity_normalize(kind=kind, value=value)
    identity = Identity.objects.select_related("customer").filter(kind=kind, value=value).first()
    return customer_root(identity.customer) if identity else None


def customer_create(
    *,
    name: str = "",
    identities: list[tuple[str, str]] | None = None,
    organization: Organization | None = None,
    language: str = "",
    at: datetime | None = None,
    external_id: str | None = None,
) -> Customer:
    """Create a customer with its identities. Raises IntegrityError if an identity is taken
    (a phone number is never taken: several customers may share one)."""
    normalized = [(kind, identity_normalize(kind=kind, value=value)) for kind, value in identities or []]
    with transaction.atomic():
        customer = Customer.objects.create(
            name=header_safe(name),
            organization=organization,
            language=language,
            created_at=at or timezone.now(),
            external_id=external_id,
        )
        Identity.objects.bulk_create(
            [Identity(customer=customer, kind=k, value=v) for k, v in dict.fromkeys(normalized)]
        )
    return customer


@dataclass(frozen=True)
class ResolvedSender:
    """Who wrote: the customer (followed through merges), the identity they wrote from, and whether both are new."""

    customer: Customer
    identity: Identity
    created: bool


# Every inbound message asks it first: compiled once per connection (core/prepared.py).
_IDENTITY_WITH_CUSTOMER = PreparedQuery(
    lambda kind, value: (
        Identity.objects.select_related("customer__organization").filter(kind=kind, value=value).order_by("pk")[:1]
    ),
    kind=str,
    value=str,
)


def sender_resolve(
    *, kind: str, value: str, name: str = "", language: str = "", at: datetime | None = None
) -> ResolvedSender:
    """``customer_resolve`` for a caller that retries its whole transaction on IntegrityError.

    One statement for a known identity (its customer and organization read
    along), three for a new one, and no savepoint: when a simultaneous first
    contact from the same address wins the unique (kind, value) constraint,
    the IntegrityError ends the caller's transaction, and its retry finds the
    winner's record. Call inside ``transaction.atomic``.
    """
    value = identity_normalize(kind=kind, value=value)
    name = header_safe(name)
    identity = _IDENTITY_WITH_CUSTOMER.first(kind=kind, value=value)
    if identity is None and kind == IdentityKind.PHONE:
        # No unique row decides between two first calls from one number: a lock does.
        identity_first_use_lock(kind, value)
        identity = _IDENTITY_WITH_CUSTOMER.first(kind=kind, value=value)
    if identity is None:
        customer = Customer.objects.create(name=name[:200], language=language, created_at=at or timezone.now())
        identity = Identity.objects.create(customer=customer, kind=kind, value=value)
        return ResolvedSender(customer=customer, identity=identity, created=True)
    customer = customer_root(identity.customer)
    if name and not customer.name:
        Customer.objects.filter(pk=customer.pk, name="").update(name=name[:200])
        customer.name = name[:200]
    return ResolvedSender(customer=customer, identity=identity, created=False)


def customer_resolve(
    *, kind: str, value: str, name: str = "", language: str = "", at: datetime | None = None
) -> tuple[Customer, bool]:
    """The customer behind an identity, created if new. Returns (customer, created).

    Safe under concurrency: the (kind, value) unique constraint decides which of
    two simultaneous first contacts creates the record; the other finds it.
    """
    value = identity_normalize(kind=kind, value=value)
    name = header_safe(name)
    existing = customer_find_by_identity(kind=kind, value=value)
    if existing is not None:
        if name and not existing.name:
            Customer.objects.filter(pk=existing.pk, name="").update(name=name[:200])
            existing.name = name[:200]
        return existing, False
    try:
        with transaction.atomic():
            if kind == IdentityKind.PHONE:
                # No unique row decides between two first contacts from one number: a lock does.
                identity_first_use_lock(kind, value)
                found = customer_find_by_identity(kind=kind, value=value)
                if found is not None:
                    return found, False
            return customer_create(name=name, identities=[(kind, value)], language=language, at=at), True
    except IntegrityError:
        found = customer_find_by_identity(kind=kind, value=value)
        if found is None:
            raise
        return found, False


def customer_identity_add(*, customer: Customer, kind: str, value: str) -> Identity:
    value = identity_normalize(kind=kind, value=value)
    if kind == IdentityKind.PHONE:
        # A phone number may be several customers' (a shared line): each holds it once.
        own = Identity.objects.filter(kind=kind, value=value, customer=customer).first()
        return own or Identity.objects.create(customer=customer, kind=kind, value=value)
    owner = Identity.objects.filter(kind=kind, value=value).first()
    if owner is not None:
        if customer_root(owner.customer).pk != customer.pk:
            raise InvalidIdentity(_("This address belongs to another customer; merge the customers instead."))
        return owner
    return Identity.objects.create(customer=customer, kind=kind, value=value)


def identity_proven(*, customer: Customer, kind: str, value: str, at: datetime | None = None) -> list[Customer]:
    """``customer`` proved they hold ``value`` (a link or a code sent to it reached them).

    A free address, and any phone number, becomes theirs. An address or
    number another record holds is never taken or merged: each such record
    becomes a suggested merge for agents (``MergeSuggestion``), returned.
    """
    at = at or timezone.now()
    value = identity_normalize(kind=kind, value=value)
    customer = customer_root(customer)
    holders = {
        root.pk: root
        for root in (
            customer_root(identity.customer)
            for identity in Identity.objects.select_related("customer").filter(kind=kind, value=value)[:20]
        )
        if root.pk != customer.pk
    }
    with transaction.atomic():
        if kind == IdentityKind.PHONE or not Identity.objects.filter(kind=kind, value=value).exists():
            customer_identity_add(customer=customer, kind=kind, value=value)
        for other in holders.values():
            MergeSuggestion.objects.get_or_create(
                customer=customer, other=other, kind=kind, value=value, defaults={"created_at": at}
            )
    return list(holders.values())


def customer_merge(*, source: Customer, target: Customer, actor: Actor, at: datetime | None = None) -> Customer:
    """Make ``source`` part of ``target``: identities, tickets, sessions and surveys move, source points to target.

    Idempotent: merging an already merged source into the same target changes nothing.
    Each moved ticket gets a ``customer`` event, and both records a ``CustomerEvent``.
    What moved is kept (``CustomerMerge``) so ``customer_unmerge`` can put it back exactly.
    """
    at = at or timezone.now()
    target = customer_root(target)
    if source.pk == target.pk:
        raise ApplicationError(_("A customer cannot be merged into itself."))
    with transaction.atomic():
        source = customer_lock(source.pk)
        if source.merged_into_id == target.pk:
            return target
        if source.merged_into_id:
            raise ApplicationError(_("This customer was already merged into another one."))
        moved_tickets = list(Ticket.objects.filter(customer=source).values_list("pk", flat=True))
        # A number both have (a shared line) stays once, on the target.
        shared = Identity.objects.filter(
            customer=source,
            kind=IdentityKind.PHONE,
            value__in=Identity.objects.filter(customer=target, kind=IdentityKind.PHONE).values("value"),
        )
        removed_phones = list(shared.values("value", "is_bouncing", "created_at"))
        shared.delete()
        moved = {
            "identities": list(Identity.objects.filter(customer=source).values_list("pk", flat=True)),
            "tickets": moved_tickets,
            "sessions": list(Session.objects.filter(customer=source).values_list("pk", flat=True)),
            "surveys": list(Survey.objects.filter(customer=source).values_list("pk", flat=True)),
            "children": list(Customer.objects.filter(merged_into=source).values_list("pk", flat=True)),
            "removed_phones": [
                {"value": p["value"], "is_bouncing": p["is_bouncing"], "created_at": p["created_at"].isoformat()}
                for p in removed_phones
            ],
            "user_id": None,
        }
        Identity.objects.filter(pk__in=moved["identities"]).update(customer=target)
        _tickets_move(moved_tickets, source=source, target=target, actor=actor, at=at)
        Session.objects.filter(pk__in=moved["sessions"]).update(customer=target)
        Survey.objects.filter(pk__in=moved["surveys"]).update(customer=target)
        Customer.objects.filter(pk__in=moved["children"]).update(merged_into=target)
        source.merged_into = target
        source.save(update_fields=["merged_into"])
        if source.user_id and not target.user_id:
            user_id = source.user_id
            Customer.objects.filter(pk=source.pk).update(user=None)
            Customer.objects.filter(pk=target.pk).update(user_id=user_id)
            target.user_id = user_id
            moved["user_id"] = user_id
        merge = CustomerMerge.objects.create(
            source=source, target=target, at=at, actor_user=actor.user, actor_source=actor.source, moved=moved
        )
        _merge_events(merge, (CustomerEvent.Kind.MERGED_INTO, CustomerEvent.Kind.MERGED_IN), actor=actor, at=at)
    return target


def _merge_events(merge: CustomerMerge, kinds: tuple[str, str], *, actor: Actor, at: datetime) -> None:
    """The history entry of ``merge`` (or its undoing) on both records: ``kinds`` for the source and the target."""
    CustomerEvent.objects.bulk_create(
        [
            CustomerEvent(
                customer_id=merge.source_id,
                kind=kinds[0],
                other_id=merge.target_id,
                merge=merge,
                actor_user=actor.user,
                at=at,
            ),
            CustomerEvent(
                customer_id=merge.target_id,
                kind=kinds[1],
                other_id=merge.source_id,
                merge=merge,
                actor_user=actor.user,
                at=at,
            ),
        ]
    )


def _tickets_move(ids: list[int], *, source: Customer, target: Customer, actor: Actor, at: datetime) -> None:
    Ticket.objects.filter(pk__in=ids).update(
        customer=target,
        updated_at=Greatest(F("updated_at"), Value(at, output_field=DateTimeField())),
        version=F("version") + 1,
    )
    TicketEvent.objects.bulk_create(
        [
            event_build(
                ticket=Ticket(pk=pk),
                kind=TicketEvent.Kind.CUSTOMER,
                actor=actor,
                at=at,
                before={"customer": source.pk},
                after={"customer": target.pk},
            )
            for pk in ids
        ]
    )


def customer_unmerge(*, merge: CustomerMerge, actor: Actor, at: datetime | None = None) -> Customer:
    """Undo ``merge``: what moved goes back to the source record, which stands alone again.

    Identities, tickets, sessions and surveys that moved and are still on the
    target return (with their ratings, which belong to the tickets); phone
    numbers both held are given back to the source; records merged into the
    source before point at it again; the sign-in account returns. What came
    to the target since the merge stays there. ApplicationError when the merge
    was undone already, or the records changed so that it cannot be (the
    source merged elsewhere, or the target merged into a third record).
    """
    at = at or timezone.now()
    with transaction.atomic():
        source = customer_lock(merge.source_id)
        target = customer_lock(merge.target_id)
        fresh = CustomerMerge.objects.filter(pk=merge.pk, undone_at__isnull=True).exists()
        if not fresh:
            raise ApplicationError(_("This merge was undone already."))
        if source.merged_into_id != target.pk or target.merged_into_id is not None:
            raise ApplicationError(
                _("The records have changed since this merge (merged again elsewhere); it cannot be undone here.")
            )
        moved = merge.moved or {}
        Identity.objects.filter(pk__in=moved.get("identities", []), customer=target).update(customer=source)
        for phone in moved.get("removed_phones", []):
            Identity.objects.get_or_create(
                customer=source,
                kind=IdentityKind.PHONE,
                value=phone["value"],
                defaults={"is_bouncing": bool(phone.get("is_bouncing"))},
            )
        tickets = list(
            Ticket.objects.filter(pk__in=moved.get("tickets", []), customer=target).values_list("pk", flat=True)
        )
        _tickets_move(tickets, source=target, target=source, actor=actor, at=at)
        Session.objects.filter(pk__in=moved.get("sessions", []), customer=target).update(customer=source)
        Survey.objects.filter(pk__in=moved.get("surveys", []), customer=target).update(customer=source)
        Customer.objects.filter(pk__in=moved.get("children", []), merged_into=target).update(merged_into=source)
        user_id = moved.get("user_id")
        if user_id and target.user_id == user_id:
            Customer.objects.filter(pk=target.pk).update(user=None)
            Customer.objects.filter(pk=source.pk).update(user_id=user_id)
        source.merged_into = None
        source.save(update_fields=["merged_into"])
        CustomerMerge.objects.filter(pk=merge.pk).update(undone_at=at, undone_by=actor.user)
        _merge_events(merge, (CustomerEvent.Kind.UNMERGED, CustomerEvent.Kind.UNMERGED_OUT), actor=actor, at=at)
    source.refresh_from_db()
    return source


@dataclass(frozen=True)
class MergePreview:
    """What merging ``source`` into ``target`` would move (the desk shows it before the agent confirms)."""

    source: Customer
    target: Customer
    identities: list[Identity]
    shared_phones: list[str]
    tickets: int
    sessions: int
    surveys: int


def customer_merge_preview(*, source: Customer, target: Customer) -> MergePreview:
    target_phones = set(
        Identity.objects.filter(customer=target, kind=IdentityKind.PHONE).values_list("value", flat=True)
    )
    identities = list(Identity.objects.filter(customer=source).order_by("kind", "value"))
    return MergePreview(
        source=source,
        target=target,
        identities=[i for i in identities if not (i.kind == IdentityKind.PHONE and i.value in target_phones)],
        shared_phones=sorted(i.value for i in identities if i.kind == IdentityKind.PHONE and i.value in target_phones),
        tickets=Ticket.objects.filter(customer=source).count(),
        sessions=Session.objects.filter(customer=source).count(),
        surveys=Survey.objects.filter(customer=source).count(),
    )


def customer_duplicates(*, customer: Customer, among: QuerySet[Customer]) -> list[tuple[Customer, str]]:
    """Other records (of ``among``, the ones the viewer may see) that may be the same person, with why:
    the same phone number, or the same name in the same organization. Never merged by themselves."""
    found: dict[int, tuple[Customer, str]] = {}
    phones = Identity.objects.filter(customer=customer, kind=IdentityKind.PHONE).values("value")
    same_phone = among.filter(
        merged_into__isnull=True, identities__kind=IdentityKind.PHONE, identities__value__in=phones
    ).exclude(pk=customer.pk)
    for other in same_phone.distinct()[:20]:
        found.setdefault(other.pk, (other, _("the same phone number")))
    suggested = MergeSuggestion.objects.filter(Q(customer=customer) | Q(other=customer)).values_list(
        "customer_id", "other_id"
    )
    pairs = {pk for pair in suggested for pk in pair if pk != customer.pk}
    for other in among.filter(pk__in=pairs, merged_into__isnull=True)[:20]:
        found.setdefault(other.pk, (other, _("one of them proved an address the other holds")))
    if customer.name.strip() and customer.organization_id:
        same_name = among.filter(
            merged_into__isnull=True, organization_id=customer.organization_id, name__iexact=customer.name.strip()
        ).exclude(pk=customer.pk)
        for other in same_name[:20]:
            found.setdefault(other.pk, (other, _("the same name in the same organization")))
    return sorted(found.values(), key=lambda pair: pair[0].pk)


def organization_get_or_create(*, name: str, tier: str | None = None) -> Organization:
    name = clean_line(name)
    org, created = Organization.objects.get_or_create(name=name, defaults={"tier": tier or "standard"})
    if tier and not created and org.tier != tier:
        org.tier = tier
        org.save(update_fields=["tier"])
    return org


def identity_mark_bouncing(*, kind: str, value: str, change: str = Identity.BouncingChange.REFUSED) -> int:
    """Mark the identity ``(kind, value)`` as bouncing (mail to it comes back).

    Callers establish that the desk's own mail to this address failed: the
    SMTP server refused it (``refused``) or a verified delivery report names
    it (``bounce``, see channels_app/email/services.py). Idempotent; returns
    how many identities were marked (0 for an unknown or malformed address,
    which is not an error: bounces name any address).
    """
    try:
        value = identity_normalize(kind=kind, value=value)
    except InvalidIdentity:
        return 0
    return Identity.objects.filter(kind=kind, value=value, is_bouncing=False).update(
        is_bouncing=True, bouncing_changed_at=timezone.now(), bouncing_change=change, bouncing_changed_by=None
    )


def identity_bouncing_clear(*, identity: Identity, actor: Actor) -> bool:
    """Clear the bouncing mark of ``identity``, so the desk writes to it again.

    An agent (``actor.user``, from the customer page, access checked by the
    caller) or mail arriving from the address (``actor`` without a user). The
    change, its time and the agent are kept on the identity. Idempotent:
    returns False when it was not bouncing (nothing written).
    """
    change = Identity.BouncingChange.AGENT if actor.user is not None else Identity.BouncingChange.MAIL
    return bool(
        Identity.objects.filter(pk=identity.pk, is_bouncing=True).update(
            is_bouncing=False,
            bouncing_changed_at=timezone.now(),
            bouncing_change=change,
            bouncing_changed_by=actor.user,
        )
    )


def identity_bouncing_clear_for_address(*, kind: str, value: str) -> bool:
    """Clear the bouncing mark of the address mail just arrived from; see ``identity_bouncing_clear``."""
    try:
        value = identity_normalize(kind=kind, value=value)
    except InvalidIdentity:
        return False
    identity = Identity.objects.filter(kind=kind, value=value, is_bouncing=True).first()
    return identity is not None and identity_bouncing_clear(identity=identity, actor=Actor.system(source="intake"))


def customer_org_manager_set(*, customer: Customer, value: bool, actor: Actor) -> bool:
    """Whether ``customer`` sees their organization's requests in the help centre
    (``Customer.is_org_manager``); True when it changed. Logged with who changed it."""
    changed = Customer.objects.filter(pk=customer.pk).exclude(is_org_manager=value).update(is_org_manager=value)
    customer.is_org_manager = value
    if changed:
        log.info("Customer %s organization manager: %s (by %s)", customer.pk, value, actor.user or actor.source)
    return bool(changed)
