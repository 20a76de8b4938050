"""Row locks are taken only through servicedesk/tickets/locks.py, in ascending id order, inside a transaction."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from channels_app.email.models import InboundEmail
from servicedesk.routing.models import AgentProfile
from servicedesk.tickets import locks
from servicedesk.tickets.models import Ticket
from tests.factories import CustomerFactory, OrganizationFactory, QueueFactory, UserFactory, ticket_make

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "servicedesk" / "tickets" / "locks.py"
# The ORM's lock, or one written in SQL (prose that names it in ``double backquotes`` is no lock).
FOR_UPDATE = re.compile(r"select_for_update|^(?!.*``).*\bFOR\s+(?:NO\s+KEY\s+)?UPDATE\b", re.IGNORECASE)


def test_no_row_lock_is_taken_outside_locks_py():
    offenders = []
    scanned = 0
    for package in ("servicedesk", "channels_app", "reports"):
        for path in (ROOT / package).rglob("*.py"):
            if path == LOCKS or "migrations" in path.parts:
                continue
            scanned += 1
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if FOR_UPDATE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert scanned > 100
    assert offenders == []
    assert "select_for_update" in LOCKS.read_text(encoding="utf-8")


@pytest.mark.django_db(transaction=True)
def test_every_helper_refuses_to_run_outside_a_transaction():
    calls = [
        ("ticket_lock", (1,)),
        ("tickets_lock", (1, 2)),
        ("tickets_lock_rows", (Ticket.objects.all(),)),
        ("customer_lock", (1,)),
        ("rows_lock", (AgentProfile.objects.all(),)),
        ("row_lock", (InboundEmail, 1)),
        ("identity_first_use_lock", ("phone", "+353861234567")),
    ]
    assert {name for name, _arguments in calls} == {
        name for name in vars(locks) if name.endswith(("_lock", "_lock_rows", "rows_lock")) and not name.startswith("_")
    }
    for helper, arguments in calls:
        with pytest.raises(AssertionError, match=f"{helper} needs a transaction"):
            getattr(locks, helper)(*arguments)


@pytest.mark.django_db
def test_tickets_are_locked_in_ascending_id_order_with_only_their_own_rows():
    queue = QueueFactory(slug="support")
    tickets = [ticket_make(queue=queue) for _ in range(3)]
    ids = sorted(ticket.pk for ticket in tickets)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = locks.tickets_lock_rows(Ticket.objects.select_related("queue").filter(pk__in=reversed(ids)))
    assert [ticket.pk for ticket in locked] == ids
    assert {ticket.queue.slug for ticket in locked} == {"support"}
    (query,) = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert 'FOR UPDATE OF "tickets_ticket"' in query
    assert query.index("ORDER BY") < query.index("FOR UPDATE")


@pytest.mark.django_db
def test_customer_and_agent_profile_locks_reload_the_row():
    customer = CustomerFactory(name="Before")
    agent = UserFactory()
    profile = AgentProfile.objects.create(user=agent)
    with transaction.atomic():
        type(customer).objects.filter(pk=customer.pk).update(name="After")
        assert locks.customer_lock(customer.pk).name == "After"
        assert locks.row_lock(AgentProfile, user=agent).pk == profile.pk
        assert [p.pk for p in locks.rows_lock(AgentProfile.objects.filter(user=agent))] == [profile.pk]


@pytest.mark.django_db(transaction=True)
def test_a_ticket_is_found_by_reference_and_locked_in_one_statement_with_its_customer():
    organization = OrganizationFactory(name="Acme")
    ticket = ticket_make(customer=CustomerFactory(organization=organization))
    with pytest.raises(AssertionError, match="ticket_lock_by_reference needs a transaction"):
        locks.ticket_lock_by_reference(ticket.reference)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = locks.ticket_lock_by_reference(ticket.reference)
        assert locked is not None
        assert locked.customer.organization is not None
        assert locked.customer.organization.name == "Acme"
        assert locks.ticket_lock_by_reference("NO-SUCH-REFERENCE") is None
    assert locked.pk == ticket.pk
    first = queries.captured_queries[0]["sql"]
    assert len(queries) == 2
    # Only the ticket's own row is locked: the customer may be locked later, in the documented order.
    assert 'FOR UPDATE OF "tickets_ticket"' in first
