"""Authorization: one function per kind of object, used on every path.

Pages, API, search, exports, attachment downloads and live streams all obtain
tickets, customers and attachments through these functions, so the rule lives
in one place:

- managers and admins see every ticket;
- an agent sees the tickets of the queues they belong to;
- a customer (signed in, or holding a ticket's signed link) sees only their own;
- anyone else sees nothing.

A customer's record (name, addresses, organization) is seen by an agent
through the tickets of their queues that show it: every ticket but one an
agent opened for a customer who existed before, until that customer acts on
it. Opening a ticket for an address therefore never shows an agent more of
the customer than the address they typed; where they see such a ticket, its
customer is a stand-in (``customer_concealed``).

Anything a caller may not see is reported as "not found", never "forbidden",
so references cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core import signing
from django.db.models import Case, CharField, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.utils.crypto import constant_time_compare

from servicedesk.accounts.roles import AGENT, user_role
from servicedesk.core.errors import NotFound
from servicedesk.tickets.models import Attachment, Customer, Identity, Message, Queue, Ticket, TicketEvent

PORTAL_SALT = "servicedesk.portal.ticket"


def customer_of_user(user: Any) -> Customer | None:
    """The customer record a signed-in user acts as, following merges."""
    if not getattr(user, "is_authenticated", False):
        return None
    customer = getattr(user, "_sd_customer", None)
    if customer is None:
        customer = Customer.objects.filter(user_id=user.pk).first()
        if customer is not None:
            customer = _customer_root(customer)
        user._sd_customer = customer or False
    return customer or None


def customer_root(customer: Customer) -> Customer:
    """The record ``customer`` was merged into, following merges (itself when not merged)."""
    return _customer_root(customer)


def _customer_root(customer: Customer) -> Customer:
    seen = {customer.pk}
    while customer.merged_into_id and customer.merged_into_id not in seen:
        customer = Customer.objects.get(pk=customer.merged_into_id)
        seen.add(customer.pk)
    return customer


def tickets_visible_to(user: Any) -> QuerySet[Ticket]:
    """Every ticket ``user`` may see. The one rule for tickets."""
    role = user_role(user)
    if role is None:
        customer = customer_of_user(user)
        if customer is None:
            return Ticket.objects.none()
        return tickets_visible_to_customer(customer)
    if role == AGENT:
        # Deleted tickets are for managers and admins, who may restore them.
        return Ticket.objects.filter(queue__in=user.queues.values("pk"), is_deleted=False)
    return Ticket.objects.all()


def tickets_visible_to_customer(customer: Customer) -> QuerySet[Ticket]:
    """The tickets a customer sees, signed in or through a signed link: their own,
    neither merged away, deleted nor spam; an organization manager
    (``Customer.is_org_manager``) also sees their organization's."""
    mine = Q(customer=customer)
    if customer.is_org_manager and customer.organization_id:
        mine |= Q(customer__organization_id=customer.organization_id)
    return Ticket.objects.filter(mine, merged_into__isnull=True, is_deleted=False, is_spam=False)


def _tickets_of_customer(customer: Customer) -> QuerySet[Ticket]:
    """Where a customer's own message may land: their tickets, neither merged away nor deleted."""
    return Ticket.objects.filter(customer=customer, merged_into__isnull=True, is_deleted=False)


def merge_follow(ticket: Ticket, *, visible: QuerySet[Ticket]) -> Ticket | None:
    """The ticket ``ticket`` ends in after its merges (itself when not merged), if it is
    in ``visible`` (one viewer's ``tickets_visible_to``), else None.

    Every path that follows a merge (desk page, API, signed link, intake)
    goes through here, so it opens the target only for whoever may open the
    target directly: a merge into a deleted ticket leads nowhere.
    """
    seen = {ticket.pk}
    target_id = ticket.pk
    while ticket.merged_into_id and ticket.merged_into_id not in seen:
        target_id = ticket.merged_into_id
        seen.add(target_id)
        ticket = Ticket.objects.only("pk", "merged_into_id").get(pk=target_id)
    return visible.select_related("customer").filter(pk=target_id).first()


def ticket_merge_target_for(user: Any, ticket: Ticket) -> Ticket | None:
    """The ticket a merged ``ticket`` was merged into, if ``user`` may see it; None
    when it was not merged or its target is hidden from ``user``."""
    if not ticket.merged_into_id:
        return None
    return merge_follow(ticket, visible=tickets_visible_to(user))


def ticket_thread_target(ticket: Ticket) -> Ticket | None:
    """Where a customer's message found on ``ticket`` (by link, thread key, reply
    token or subject tag) goes: ``ticket`` or the ticket it was merged into,
    if that customer may see it; None (open a new ticket) when it is deleted."""
    return merge_follow(ticket, visible=_tickets_of_customer(_customer_root(ticket.customer)))


def ticket_get_for(user: Any, reference: str) -> Ticket:
    """One visible ticket by reference, else NotFound."""
    ticket = tickets_visible_to(user).filter(reference=reference).first()
    if ticket is None:
        raise NotFound("Ticket not found.")
    return ticket


def ticket_references_visible(user: Any, references: Iterable[str]) -> set[str]:
    """Those of ``references`` naming a ticket ``user`` may see (one query): a ticket's
    history names another ticket (a merge) only to whoever may open it."""
    found = tickets_visible_to(user).filter(reference__in=list(references)).values_list("reference", flat=True)
    return {reference for reference in found if reference}


def can_see_ticket(user: Any, ticket: Ticket) -> bool:
    return tickets_visible_to(user).filter(pk=ticket.pk).exists()


def messages_visible_to(user: Any, ticket: Ticket) -> QuerySet[Message]:
    """Messages of a ticket the caller already may see: customers get public ones only."""
    qs = Message.objects.filter(ticket=ticket)
    if user_role(user) is None:
        return public_messages(qs)
    return qs


def public_messages(qs: QuerySet[Message]) -> QuerySet[Message]:
    from django.db.models import Q

    return qs.filter(Q(kind__in=["public_enduser", "public_agent"]) | Q(kind="system", purpose="acknowledgement"))


def tickets_showing_customer(tickets: QuerySet[Ticket]) -> QuerySet[Ticket]:
    """Those of ``tickets`` that show their customer to whoever sees the ticket.

    Every ticket but one an agent opened (its ``created`` event is an agent's)
    for a customer who existed before it, until the customer acts on it (an
    event of theirs: they write, reply, rate).
    """
    opened_by_agent = TicketEvent.objects.filter(
        ticket=OuterRef("pk"), kind=TicketEvent.Kind.CREATED, actor_user__isnull=False
    )
    customer_acted = TicketEvent.objects.filter(ticket=OuterRef("pk"), actor_customer__isnull=False)
    return tickets.filter(
        ~Exists(opened_by_agent) | Q(customer__created_at__gte=F("created_at")) | Exists(customer_acted)
    )


def customers_visible_to(user: Any) -> QuerySet[Customer]:
    """Customers ``user`` may see: agents those a ticket of their queues shows (``tickets_showing_customer``)."""
    role = user_role(user)
    if role is None:
        customer = customer_of_user(user)
        return Customer.objects.filter(pk=customer.pk) if customer else Customer.objects.none()
    if role == AGENT:
        return Customer.objects.filter(pk__in=tickets_showing_customer(tickets_visible_to(user)).values("customer_id"))
    return Customer.objects.all()


def identity_get_for(user: Any, *, customer_pk: int, identity_pk: int) -> Identity:
    """One address of a customer ``user`` may see (``customers_visible_to``)."""
    identity = (
        Identity.objects.filter(pk=identity_pk, customer_id=customer_pk)
        .filter(customer__in=customers_visible_to(user))
        .first()
    )
    if identity is None:
        raise NotFound("Identity not found.")
    return identity


def customer_search_scope(user: Any) -> QuerySet[Customer] | None:
    """The customers whose names and addresses a ticket search may match for ``user``;
    None when that is every customer (managers and admins)."""
    if user_role(user) in (AGENT, None):
        return customers_visible_to(user)
    return None


def customer_name_shown(user: Any) -> F | Case:
    """The name of a ticket's customer as ``user`` sees it, an expression on a ticket
    query: for an agent, empty when the customer is hidden from them (the stand-in of
    ``customers_conceal``), so ordering by it tells nothing of the hidden name. One
    uncorrelated subquery (``customers_visible_to``), evaluated once per query."""
    if user_role(user) != AGENT:
        return F("customer__name")
    return Case(
        When(customer_id__in=customers_visible_to(user).values("pk"), then=F("customer__name")),
        default=Value(""),
        output_field=CharField(),
    )


def customer_concealed(customer: Customer, *, addresses: Iterable[tuple[str, str]] = ()) -> Customer:
    """A stand-in for a customer the caller sees a ticket of but may not see: the
    same id, no name, no organization, and as identities only ``addresses``
    (kind, value) the caller gave themselves. Never saved."""
    stand_in = Customer(pk=customer.pk, name="", created_at=customer.created_at)
    stand_in.concealed = True
    identities = [Identity(customer=stand_in, kind=kind, value=value) for kind, value in addresses]
    stand_in._prefetched_objects_cache = {"identities": identities}  # type: ignore[attr-defined]
    return stand_in


def customers_conceal(
    user: Any,
    tickets: Iterable[Ticket],
    *,
    messages: Iterable[Message] = (),
    events: Iterable[TicketEvent] = (),
    addresses: Iterable[tuple[str, str]] = (),
) -> None:
    """Replace, in place, the customer of each ticket, the customer author of each
    message and the customer who did each event that ``user`` may not see
    (``customers_visible_to``) by its stand-in (``customer_concealed`` with
    ``addresses``). One query, none without customers; agents only, since
    managers and admins see every customer and customers only themselves."""
    if user_role(user) != AGENT:
        return
    tickets, messages, events = list(tickets), list(messages), list(events)
    ids = {ticket.customer_id for ticket in tickets} | {m.author_customer_id for m in messages if m.author_customer_id}
    ids |= {event.actor_customer_id for event in events if event.actor_customer_id}
    if not ids:
        return
    shown = set(customers_visible_to(user).filter(pk__in=ids).values_list("pk", flat=True))
    addresses = tuple(addresses)
    for ticket in tickets:
        if ticket.customer_id not in shown:
            ticket.customer = customer_concealed(ticket.customer, addresses=addresses)
    for message in messages:
        if message.author_customer_id and message.author_customer_id not in shown:
            message.author_customer = customer_concealed(message.author_customer)  # type: ignore[arg-type]
    for event in events:
        if event.actor_customer_id and event.actor_customer_id not in shown:
            event.actor_customer = customer_concealed(event.actor_customer)  # type: ignore[arg-type]


def queues_visible_to(user: Any) -> QuerySet[Queue]:
    """Queues ``user`` works in: agents their own, managers and admins every one, others none."""
    role = user_role(user)
    if role is None:
        return Queue.objects.none()
    if role == AGENT:
        return Queue.objects.filter(members=user)
    return Queue.objects.all()


def attachment_get_for(user: Any, key: str) -> Attachment:
    """An attachment by key, if its ticket (and, for customers, its message) is visible.
    A file of a reply not sent yet (held, returned or kept: docs/drafts.md) is its agent's alone."""
    attachment = Attachment.objects.select_related("message").filter(key=key).first()
    if attachment is None or not tickets_visible_to(user).filter(pk=attachment.ticket_id).exists():
        raise NotFound("Attachment not found.")
    if attachment.draft_agent_id is not None and attachment.draft_agent_id != getattr(user, "pk", None):
        raise NotFound("Attachment not found.")
    if user_role(user) is None and (attachment.message is None or not attachment.message.is_public):
        raise NotFound("Attachment not found.")
    return attachment


# --- Signed links for customers without an account ---------------------------


def portal_token_for(ticket: Ticket) -> str:
    return signing.dumps({"t": ticket.pk, "k": ticket.portal_key}, salt=PORTAL_SALT, compress=True)


def ticket_for_portal_token(token: str) -> Ticket:
    """The ticket a signed link opens, else NotFound. Follows merges to the target when
    the link's customer may see it (``ticket_thread_target``)."""
    try:
        data = signing.loads(token, salt=PORTAL_SALT)
        ticket = Ticket.objects.select_related("customer").get(pk=int(data["t"]), is_deleted=False)
    except (signing.BadSignature, KeyError, TypeError, ValueError, Ticket.DoesNotExist):
        raise NotFound("Ticket not found.") from None
    if not constant_time_compare(ticket.portal_key, str(data.get("k", ""))):
        raise NotFound("Ticket not found.")
    target = ticket_thread_target(ticket)
    if target is None or target.is_spam:
        raise NotFound("Ticket not found.")
    return target


def attachment_get_for_portal(ticket: Ticket, key: str) -> Attachment:
    attachment = Attachment.objects.select_related("message").filter(key=key, ticket=ticket).first()
    if attachment is None or attachment.message is None or not attachment.message.is_public:
        raise NotFound("Attachment not found.")
    return attachment
