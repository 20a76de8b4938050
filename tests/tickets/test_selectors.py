"""Inbox and API list reads: every sort, its exact reverse, search and filters."""

from datetime import timedelta

import pytest
from django.utils import timezone

from servicedesk.tickets.models import Ticket
from servicedesk.tickets.selectors import TICKET_SORTS, TicketFilters, ticket_list
from servicedesk.tickets.statuses import Priority, Status
from tests.factories import AgentFactory, CustomerFactory, QueueFactory, ticket_make

PRIORITY_ORDER = list(Priority.values)
STATUS_ORDER = list(Status.values)


@pytest.fixture
def data(db):
    """Twelve tickets in two queues with ties on status, priority and subject."""
    support = QueueFactory(slug="support", name="Support")
    billing = QueueFactory(slug="billing", name="Billing")
    alice = CustomerFactory(name="Alice Byrne", email="alice@example.com")
    bob = CustomerFactory(name="Bob Stone", email="bob.stone@mail.test")
    carol = CustomerFactory(name="Carol Diaz", email="carol@example.org")
    customers = [alice, bob, carol]
    subjects = ["Printer jam", "Invoice copy", "Printer on fire", "Login fails", "Refund", "Invoice copy"]
    base = timezone.now() - timedelta(days=30)
    tickets = []
    for n in range(12):
        ticket = ticket_make(
            customer=customers[n % 3],
            queue=support if n % 4 else billing,
            subject=subjects[n % len(subjects)],
            channel="email" if n % 2 else "web",
        )
        Ticket.objects.filter(pk=ticket.pk).update(
            status=STATUS_ORDER[n % len(STATUS_ORDER)],
            priority=PRIORITY_ORDER[(n * 3) % len(PRIORITY_ORDER)],
            created_at=base + timedelta(hours=(n * 7) % 12),
            # Pairs share an update time, so the id decides between them.
            updated_at=base + timedelta(days=(n * 5) % 6),
            # Every third ticket has no running SLA target; the others share due instants in pairs.
            sla_due_at=None if n % 3 == 0 else base + timedelta(hours=(n * 5) % 4),
        )
        tickets.append(ticket.pk)
    return {"support": support, "billing": billing, "customers": customers, "ids": tickets}


@pytest.fixture
def manager(db):
    return AgentFactory(username="max", role="manager")


def _ids(user, **filters) -> list[int]:
    return [t.pk for t in ticket_list(user=user, filters=TicketFilters(**filters))]


def _expected(sort: str) -> list[int]:
    rows = list(Ticket.objects.select_related("customer"))

    def key(t: Ticket, descending: bool):
        flip = -1 if descending else 1
        upd, created = t.updated_at.timestamp(), t.created_at.timestamp()
        return {
            "updated": (flip * upd, flip * t.pk),
            "created": (flip * created, flip * t.pk),
            "priority": (flip * PRIORITY_ORDER.index(t.priority), flip * upd, flip * t.pk),
            "reference": (flip * t.pk,),
            # the lifecycle order, the most recently updated first within a status
            "status": (flip * STATUS_ORDER.index(t.status), -flip * upd, -flip * t.pk),
            # the next due instant, soonest first, tickets without one last
            "due": (
                flip * (t.sla_due_at is None),
                flip * (t.sla_due_at.timestamp() if t.sla_due_at else 0),
                flip * t.pk,
            ),
        }[sort.lstrip("-")]

    name = sort.lstrip("-")
    descending = sort.startswith("-")
    if name in ("subject", "customer"):
        text = (lambda t: t.subject) if name == "subject" else (lambda t: t.customer.name)
        rows.sort(key=lambda t: (text(t), t.pk), reverse=descending)
    else:
        rows.sort(key=lambda t: key(t, descending))
    return [t.pk for t in rows]


@pytest.mark.parametrize("sort", sorted(TICKET_SORTS))
def test_every_sort_returns_the_expected_order(data, manager, sort):
    assert _ids(manager, sort=sort) == _expected(sort)


@pytest.mark.parametrize("sort", sorted(s for s in TICKET_SORTS if not s.startswith("-")))
def test_each_reversed_sort_is_the_exact_reverse(data, manager, sort):
    forward = _ids(manager, sort=sort)
    assert len(forward) == 12
    assert _ids(manager, sort=f"-{sort}") == forward[::-1]


def test_default_sort_is_most_recently_updated_first(data, manager):
    assert _ids(manager) == _ids(manager, sort="-updated")


def _python_search(term: str) -> set[int]:
    """The tickets a search finds, by plain string tests. A term shorter than three characters
    is no piece of a subject, name or address (no trigram index finds it), only a name in full."""
    found = set()
    pieces = len(term) >= 3
    for t in Ticket.objects.select_related("customer").prefetch_related("customer__identities"):
        identities = [i.value for i in t.customer.identities.all()]
        if (
            (pieces and term.lower() in t.subject.lower())
            or (pieces and term.lower() in t.customer.name.lower())
            or (not pieces and term == t.customer.name)
            or (pieces and any(term.lower() in value.lower() for value in identities))
            or (term.upper().startswith("SD-") and t.reference == term.upper())
            or (term.isdigit() and t.reference.endswith(f"-{term}"))
        ):
            found.add(t.pk)
    return found


@pytest.mark.parametrize(
    "term", ["printer", "PRINTER", "invoice copy", "byrne", "Stone", "mail.test", "carol@", "zzz", "exa", "e"]
)
def test_search_returns_the_same_set_as_a_plain_filter(data, manager, term):
    found = set(_ids(manager, search=term))
    assert found == _python_search(term)


@pytest.mark.parametrize("term", ["printer", "byrne", "exa", "e", "zzz"])
def test_broad_search_is_the_same_set_as_a_narrow_one(data, manager, term, monkeypatch):
    """Terms matching more tickets than the id-list limit take the row-by-row path."""
    from servicedesk.tickets import selectors

    narrow = set(_ids(manager, search=term))
    monkeypatch.setattr(selectors, "SEARCH_ID_LIST_LIMIT", 0)
    broad = set(_ids(manager, search=term))
    assert broad == narrow == _python_search(term)


def test_search_finds_by_subject_substring_ignoring_case(data, manager):
    assert {Ticket.objects.get(pk=pk).subject.lower() for pk in _ids(manager, search="PRINT")} == {
        "printer jam",
        "printer on fire",
    }


def test_search_by_customer_name_and_identity(data, manager):
    alice, bob, _ = data["customers"]
    assert set(_ids(manager, search="alice byrne")) == set(alice.tickets.values_list("pk", flat=True))
    assert set(_ids(manager, search="bob.stone@")) == set(bob.tickets.values_list("pk", flat=True))


def test_search_by_reference_and_number_alone(data, manager):
    ticket = Ticket.objects.get(pk=data["ids"][4])
    number = ticket.reference.split("-", 1)[1]
    assert _ids(manager, search=ticket.reference) == [ticket.pk]
    assert _ids(manager, search=ticket.reference.lower()) == [ticket.pk]
    assert _ids(manager, search=number) == [ticket.pk]


def test_filters_combine(data, manager):
    alice = data["customers"][0]
    result = ticket_list(
        user=manager,
        filters=TicketFilters(queue=("support",), channel=("email",), customer=alice.pk, search="ice", sort="subject"),
    )
    expected = [
        t.pk
        for t in Ticket.objects.select_related("queue").order_by("subject", "id")
        if t.queue.slug == "support"
        and t.channel == "email"
        and t.customer_id == alice.pk
        and t.pk in _python_search("ice")
    ]
    assert expected
    assert [t.pk for t in result] == expected


def test_status_and_priority_filters_with_rank_sorts(data, manager):
    statuses = (Status.NEW, Status.SOLVED)
    priorities = (Priority.HIGH, Priority.URGENT)
    result = _ids(manager, status=statuses, priority=priorities, sort="-priority")
    expected = [
        pk
        for pk in _expected("-priority")
        if Ticket.objects.filter(pk=pk, status__in=statuses, priority__in=priorities).exists()
    ]
    assert result == expected


def test_agent_sees_only_their_queues_in_every_sort(data):
    agent = AgentFactory(username="ann", queues=[data["billing"]])
    billing = set(Ticket.objects.filter(queue=data["billing"]).values_list("pk", flat=True))
    for sort in ("-updated", "priority", "-status", "subject", "customer"):
        ids = _ids(agent, sort=sort)
        assert set(ids) == billing
        assert ids == [pk for pk in _expected(sort) if pk in billing]


def test_merged_and_deleted_tickets_are_left_out(data, manager):
    first, second, third = data["ids"][:3]
    Ticket.objects.filter(pk=first).update(merged_into_id=second)
    Ticket.objects.filter(pk=third).update(is_deleted=True)
    ids = _ids(manager, sort="-priority")
    assert first not in ids and third not in ids
    assert len(ids) == 10


def test_search_finds_an_idn_address_by_either_form_of_its_domain(data, manager):
    jose = CustomerFactory(name="José Núñez", email="josé@bücher.example")
    ticket = ticket_make(customer=jose, subject="Pedido")

    for term in ("xn--bcher-kva", "JOSÉ@XN--BCHER-KVA.EXAMPLE", "@bücher", "jose\u0301@"):
        assert _ids(manager, search=term) == [ticket.pk], term


@pytest.mark.parametrize("sort", sorted(TICKET_SORTS))
def test_a_narrow_search_sorts_its_ids_apart_from_the_indexes_in_the_same_order(data, manager, sort, monkeypatch):
    """A search narrowed to its id list orders by COALESCE(x, x), which no index matches
    (PostgreSQL then fetches the ids and sorts them), and gives the order a broad search gives."""
    from servicedesk.tickets import selectors

    narrow = ticket_list(user=manager, filters=TicketFilters(search="exa", sort=sort))
    monkeypatch.setattr(selectors, "SEARCH_ID_LIST_LIMIT", 0)
    broad = ticket_list(user=manager, filters=TicketFilters(search="exa", sort=sort))

    assert [t.pk for t in narrow] == [t.pk for t in broad]
    assert len(narrow) > 2
    order_by = str(narrow.query).rsplit("ORDER BY", 1)[1]
    assert "COALESCE" in order_by
    assert "COALESCE" not in str(broad.query).rsplit("ORDER BY", 1)[1]
