"""Authorization: one function per kind of object, used on every path.

Pages, API, search, exports, attachment downloads and live streams all obtain
tickets, customers and attachments through these functions, so the rule lives
in one place:

- managers and admins see every ticket;
- an agent sees the tickets of the queues they belong to;
- a customer (signed in, or holding a ticket's signed link) sees only their own;
- anyone else sees nothing.

Anything a caller may not see is reported as "not found", never "forbidden",
so references cannot be probed.
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.db.models import QuerySet
from django.utils.crypto import constant_time_compare

from servicedesk.accounts.roles import AGENT, user_role
from servicedesk.core.errors import NotFound
from servicedesk.tickets.models import Attachment, Customer, Message, Queue, Ticket

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
    """The tickets a customer sees, signed in, through a signed link or by writing
    to us: their own, neither merged away nor deleted."""
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
    return merge_follow(ticket, visible=tickets_visible_to_customer(_customer_root(ticket.customer)))


def ticket_get_for(user: Any, reference: str) -> Ticket:
    """One visible ticket by reference, else NotFound."""
    ticket = tickets_visible_to(user).filter(reference=reference).first()
    if ticket is None:
        raise NotFound("Ticket not found.")
    return ticket


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


def customers_visible_to(user: Any) -> QuerySet[Customer]:
    """Customers ``user`` may see: agents those with a ticket in their queues."""
    role = user_role(user)
    if role is None:
        customer = customer_of_user(user)
        return Customer.objects.filter(pk=customer.pk) if customer else Customer.objects.none()
    if role == AGENT:
        return Customer.objects.filter(pk__in=tickets_visible_to(user).values("customer_id"))
    return Customer.objects.all()


def queues_visible_to(user: Any) -> QuerySet[Queue]:
    """Queues ``user`` works in: agents their own, managers and admins every one, others none."""
    role = user_role(user)
    if role is None:
        return Queue.objects.none()
    if role == AGENT:
        return Queue.objects.filter(members=user)
    return Queue.objects.all()


def attachment_get_for(user: Any, key: str) -> Attachment:
    """An attachment by key, if its ticket (and, for customers, its message) is visible."""
    attachment = Attachment.objects.select_related("message").filter(key=key).first()
    if attachment is None or not tickets_visible_to(user).filter(pk=attachment.ticket_id).exists():
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
    if target is None:
        raise NotFound("Ticket not found.")
    return target


def attachment_get_for_portal(ticket: Ticket, key: str) -> Attachment:
    attachment = Attachment.objects.select_related("message").filter(key=key, ticket=ticket).first()
    if attachment is None or attachment.message is None or not attachment.message.is_public:
        raise NotFound("Attachment not found.")
    return attachment
