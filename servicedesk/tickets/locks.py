"""Row locks, always taken in one order (tickets by ascending id) to avoid deadlocks."""

from django.db import transaction

from servicedesk.tickets.models import Ticket


def ticket_lock(ticket_id: int) -> Ticket:
    """Lock and reload one ticket. Must run inside ``transaction.atomic``."""
    assert transaction.get_connection().in_atomic_block, "ticket_lock needs a transaction"
    return Ticket.objects.select_for_update().get(pk=ticket_id)


def tickets_lock(*ticket_ids: int) -> dict[int, Ticket]:
    """Lock several tickets in ascending id order."""
    assert transaction.get_connection().in_atomic_block, "tickets_lock needs a transaction"
    ids = sorted(set(ticket_ids))
    locked = {t.pk: t for t in Ticket.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    return locked
