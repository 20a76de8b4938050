"""Reads shared by the agent workspace, the API and exports.

Every list starts from ``access.tickets_visible_to(user)``; filters and sorts
use indexed columns, and related rows are fetched in constant queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, F, Lookup, Min, OrderBy, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import In
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from servicedesk.accounts.roles import user_role
from servicedesk.core.email_address import email_search_term
from servicedesk.core.pagination import ids_first, uncounted
from servicedesk.tickets import search as text_search
from servicedesk.tickets.access import (
    customer_name_shown,
    customer_search_scope,
    customers_visible_to,
    tickets_visible_to,
)
from servicedesk.tickets.models import Customer, Identity, IdentityKind, Message, Tag, Ticket, TicketTarget
from servicedesk.tickets.models.tickets import priority_rank, status_rank

# name -> ORDER BY; the default is the most recently updated first. Each "-name"
# is the exact reverse of "name", so one index per sort key serves both.
TICKET_SORTS: dict[str, tuple[str | OrderBy, ...]] = {
    "-updated": ("-updated_at", "-id"),
    "updated": ("updated_at", "id"),
    "-created": ("-created_at", "-id"),
    "created": ("created_at", "id"),
    "-priority": ("-priority_rank", "-updated_at", "-id"),
    "priority": ("priority_rank", "updated_at", "id"),
    "reference": ("id",),
    "-reference": ("-id",),
    "subject": ("subject", "id"),
    "-subject": ("-subject", "-id"),
    # The customer's name as the caller may see it (access.customer_name_shown): a
    # customer hidden from an agent sorts as the stand-in they are shown, nameless.
    "customer": ("customer_name_shown", "id"),
    "-customer": ("-customer_name_shown", "-id"),
    # Lifecycle order (new first, closed last), the most recently updated first within a status.
    "status": ("status_rank", "-updated_at", "-id"),
    "-status": ("-status_rank", "updated_at", "id"),
    # The next SLA due instant, soonest first; tickets without a running target
    # last. The reverse mirrors it exactly (latest first, those without one
    # first), which is the ticket_sla_due_id index read backwards on PostgreSQL.
    "due": (F("sla_due_at").asc(nulls_last=True), "id"),
    "-due": (F("sla_due_at").desc(nulls_first=True), "-id"),
}
# With a search and no sort asked for: the best matches first, the most recently
# updated first among equals (docs/search.md); without a search, "-updated".
SORT_RELEVANCE = "relevance"
# Other names the API accepts for a sort (``ordering=sla_due_at``).
TICKET_SORT_ALIASES = {"sla_due_at": "due", "-sla_due_at": "-due"}

# ``?tag_match=any``: tickets carrying any of the tags asked for (default: all of them).
TAG_MATCH_ALL = "all"
TAG_MATCH_ANY = "any"

# Inbox views by next SLA due instant: due within the next hour, or already overdue.
DUE_SOON = "hour"
DUE_OVERDUE = "overdue"
DUE_VIEWS = (DUE_SOON, DUE_OVERDUE)
DUE_SOON_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class TicketFilters:
    status: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()  # queue slugs
    assignee: str | None = None  # user id, "me" or "none"
    channel: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    customer: int | None = None
    search: str = ""
    sort: str = "-updated"
    include_merged: bool = False
    spam: bool = False  # True: only the tickets marked as spam (hidden from every other list)
    deleted: bool = False  # True: only the deleted tickets (managers and admins see them)
    due: str | None = None  # DUE_SOON or DUE_OVERDUE
    # The next SLA due instant in [due_after, due_before); breaching_within is
    # a number of minutes: due after now and at most that long from now.
    due_after: datetime | None = None
    due_before: datetime | None = None
    breaching_within: int | None = None
    # Created in [created_from, created_to): the reports' drill-down.
    created_from: datetime | None = None
    created_to: datetime | None = None
    # Tag names (as stored: trimmed, lower case); a ticket must carry every one
    # of them, or any one of them with ``tags_any`` (``?tags=a,b&tag_match=any``).
    tags: tuple[str, ...] = ()
    tags_any: bool = False

    @classmethod
    def from_params(cls, params: Any) -> TicketFilters:
        """From a QueryDict-like mapping; unknown values are simply not matched."""

        def many(name: str) -> tuple[str, ...]:
            values: list[str] = []
            for raw in params.getlist(name) if hasattr(params, "getlist") else [params.get(name, "")]:
                values.extend(v.strip() for v in str(raw or "").split(",") if v.strip())
            return tuple(values)

        customer = params.get("customer")
        due = params.get("due") or None
        sort = params.get("sort") or params.get("ordering") or ""
        sort = TICKET_SORT_ALIASES.get(sort, sort)
        if sort not in TICKET_SORTS:
            # The due views list the soonest first unless a column says otherwise.
            searched = bool((params.get("search") or params.get("q") or "").strip())
            sort = "due" if due in DUE_VIEWS else SORT_RELEVANCE if searched else "-updated"
        return cls(
            status=many("status"),
            queue=many("queue"),
            assignee=(params.get("assignee") or None),
            channel=many("channel"),
            priority=many("priority"),
            customer=int(customer) if customer and str(customer).isdigit() else None,
            search=(params.get("search") or params.get("q") or "").strip()[:200],
            sort=sort,
            due=due if due in DUE_VIEWS else None,
            spam=_flag(params.get("spam")),
            deleted=_flag(params.get("deleted")),
            created_from=_instant(params.get("created_from")),
            created_to=_instant(params.get("created_to")),
            tags=tuple(dict.fromkeys(" ".join(tag.split()).lower()[:64] for tag in many("tags"))),
            tags_any=str(params.get("tag_match") or "").strip().lower() == TAG_MATCH_ANY,
        )


def _flag(raw: Any) -> bool:
    return str(raw or "").strip().lower() in ("1", "true", "yes")


def _instant(raw: Any) -> datetime | None:
    """An ISO 8601 instant from a query parameter (a naive one in the current zone); None if invalid."""
    try:
        value = parse_datetime(str(raw or "").strip().replace(" ", "+"))
    except ValueError:
        return None
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def ticket_list(*, user: Any, filters: TicketFilters | None = None, now: datetime | None = None) -> QuerySet[Ticket]:
    """Tickets ``user`` may see, filtered, searched and sorted; related rows prefetched.

    ``now`` is the instant the due filters are measured from (default: the clock).
    """
    filters = filters or TicketFilters()
    now = now or timezone.now()
    qs = tickets_visible_to(user)
    narrowed = broad = False
    search = None
    ordering = TICKET_SORTS.get(filters.sort, TICKET_SORTS["-updated"])
    if filters.search:
        found = ticket_search_for(user, filters.search)
        search = found.condition
        narrowed = found.ranks is not None
        broad = found.broad
        if found.ranks is not None and filters.sort == SORT_RELEVANCE:
            qs = qs.annotate(search_rank=text_search.search_rank(found.ranks))
            ordering = (F("search_rank").desc(), *TICKET_SORTS["-updated"])
    qs = qs.filter(ticket_filters_q(user=user, filters=filters, now=now, search=search))
    # The same expressions as the ticket_priority_rank and ticket_status_rank indexes.
    if "priority" in filters.sort:
        qs = qs.annotate(priority_rank=priority_rank())
    if "status" in filters.sort:
        qs = qs.annotate(status_rank=status_rank())
    if "customer" in filters.sort:
        qs = qs.annotate(customer_name_shown=customer_name_shown(user))
    qs = _related(qs).order_by(*(_sorted_apart(ordering) if narrowed else ordering))
    if broad:
        return uncounted(qs)
    return ids_first(qs, _related(tickets_visible_to(user))) if narrowed else qs


def _related(tickets: QuerySet[Ticket]) -> QuerySet[Ticket]:
    """``tickets`` with the related rows a list shows: customer, queue and assignee joined; topic
    and SLA policy fetched apart (none when no ticket of the page has one). Each table joined
    multiplies the orders PostgreSQL weighs: with all five joined, planning a page took
    12 ms for a statement that ran in 1 ms; with three, 3 ms."""
    return tickets.select_related("customer", "queue", "assignee").prefetch_related(
        "topic", "sla_policy", Prefetch("tags", queryset=Tag.objects.order_by("name")), _targets_prefetch()
    )


def ticket_filters_q(*, user: Any, filters: TicketFilters, now: datetime, search: Q | None = None) -> Q:
    """The conditions of ``filters`` as one condition on tickets, without the access rule
    (the caller starts from ``tickets_visible_to(user)``; ``user`` is who "me" is).

    ``search``: the condition of ``filters.search`` when the caller made it already
    (``ticket_list`` narrows it to an id list first); otherwise ``ticket_search_broad_q``,
    which runs no query of its own, so the conditions of many lists can be counted in
    one statement (the inbox's saved views).
    """
    q = Q() if filters.include_merged else Q(merged_into__isnull=True)
    # The Deleted view lists the deleted tickets, spam or not; every other list none of them.
    q &= Q(is_deleted=True) if filters.deleted else Q(is_deleted=False, is_spam=filters.spam)
    if filters.status:
        q &= Q(status__in=filters.status)
    if filters.queue:
        q &= Q(queue__slug__in=filters.queue)
    if filters.channel:
        q &= Q(channel__in=filters.channel)
    if filters.priority:
        q &= Q(priority__in=filters.priority)
    if filters.customer:
        q &= Q(customer_id=filters.customer)
    if filters.assignee == "me":
        q &= Q(assignee_id=getattr(user, "pk", None))
    elif filters.assignee == "none":
        q &= Q(assignee__isnull=True)
    elif filters.assignee and filters.assignee.isdigit():
        q &= Q(assignee_id=int(filters.assignee))
    if filters.search:
        q &= (
            search
            if search is not None
            else ticket_search_broad_q(filters.search, customers=customer_search_scope(user), internal=_internal(user))
        )
    q &= _due_q(filters, now)
    if filters.created_from is not None:
        q &= Q(created_at__gte=filters.created_from)
    if filters.created_to is not None:
        q &= Q(created_at__lt=filters.created_to)
    if filters.tags:
        q &= ticket_tags_q(filters.tags, any_of=filters.tags_any)
    return q


def ticket_tags_q(names: tuple[str, ...], *, any_of: bool = False) -> Q:
    """Tickets carrying every tag of ``names`` (any one of them with ``any_of``).

    One EXISTS per tag (all) or one for the list (any). A tag is named by its id,
    found once per query by its unique name (a scalar subquery): each ticket is
    then one probe of the ticket-tag table's unique (ticket, tag) index, and
    PostgreSQL, knowing a ticket carries a tag at most once, joins the tag's
    links to the tickets as they come. Matched by name in a join instead, it
    first gathered and deduplicated every link of the tag, before a count
    could stop at its cap (14 of 49 ms for a tag on 25,000 tickets).
    """
    links = Ticket.tags.through.objects.filter(ticket_id=OuterRef("pk"))
    if any_of and len(names) > 1:
        return Q(Exists(links.filter(tag__name__in=names)))
    q = Q()
    for name in names:
        q &= Q(Exists(links.filter(tag_id=Subquery(Tag.objects.filter(name=name).values("pk")[:1]))))
    return q


def _sorted_apart(ordering: tuple[str | OrderBy, ...]) -> list[str | OrderBy]:
    """The same order, written so that no index matches it (COALESCE(x, x) is x, but not the
    indexed column): a search narrowed to a few thousand ids is then fetched by primary key and
    sorted, instead of PostgreSQL walking the whole sort index for rows that match (on a million
    tickets, a name whose tickets are all old walked 800,000 index entries for a page)."""
    apart: list[str | OrderBy] = []
    for key in ordering:
        if isinstance(key, str):
            name = key.lstrip("-")
            same = Coalesce(F(name), F(name))
            apart.append(same.desc() if key.startswith("-") else same.asc())
        else:
            apart.append(key)
    return apart


def _due_q(filters: TicketFilters, now: datetime) -> Q:
    """The due filters as one condition on ``sla_due_at`` (a range on the ticket_sla_due_id index)."""
    q = Q()
    if filters.due == DUE_SOON:
        q &= Q(sla_due_at__gt=now, sla_due_at__lte=now + DUE_SOON_WINDOW)
    elif filters.due == DUE_OVERDUE:
        q &= Q(sla_due_at__lte=now)
    if filters.breaching_within is not None:
        q &= Q(sla_due_at__gt=now, sla_due_at__lte=now + timedelta(minutes=filters.breaching_within))
    if filters.due_after is not None:
        q &= Q(sla_due_at__gte=filters.due_after)
    if filters.due_before is not None:
        q &= Q(sla_due_at__lt=filters.due_before)
    return q


def _targets_prefetch() -> Prefetch:
    """A ticket's SLA targets, first reply before resolution, with their policy and calendar."""
    return Prefetch("sla_targets", queryset=TicketTarget.objects.select_related("policy", "calendar").order_by("kind"))


# A search matching at most this many tickets is narrowed to the literal list
# of their ids, which the database resolves through the primary key whatever
# its statistics say; a broader one is tested row by row.
SEARCH_ID_LIST_LIMIT = 10_000
# The shortest piece of a subject a search looks for inside words (a trigram).
SUBJECT_PIECE_MIN = 3


class AmongIds(Lookup):
    """``column = ANY(ids)``: a list of ids as one parameter (``IN`` elsewhere than PostgreSQL).

    A search's few thousand ids written as ``IN (%s, %s, ...)`` cost more to
    write into the statement (each a parameter converted one by one) than the
    database spent reading them (100 ms for 4,600 ids). The parameter is the array's text
    (``{1,2,3}``), written from whole numbers: psycopg's own array conversion took 6 ms for them."""

    lookup_name = "among_ids"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        if connection.vendor != "postgresql":
            return In(self.lhs, list(self.rhs)).as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        array = "{" + ",".join(str(int(pk)) for pk in self.rhs) + "}"
        return f"{lhs} = ANY(%s::bigint[])", [*lhs_params, array]


@dataclass(frozen=True)
class TicketSearch:
    """A search as a condition on tickets; ``ranks`` (ticket id -> rank, higher first) when it was
    narrowed to the list of its tickets, None when it matched too many to list and rank."""

    condition: Q
    ranks: dict[int, float] | None
    # The text matched too many documents to rank: listed newest first, paged without a count.
    broad: bool = False


def _internal(user: Any) -> bool:
    """Whether ``user``'s searches look into internal notes and tags (agents, never customers)."""
    return user_role(user) is not None


def ticket_search(term: str, *, customers: QuerySet[Customer] | None = None, internal: bool = True) -> TicketSearch:
    """Match the text (``search.py``: subject, reference, messages; notes and tags when ``internal``),
    a reference or an address typed in full (ranked first), a customer's name or an identity, or a
    piece of the subject.

    Names and identities match only among ``customers`` when given (the
    caller's ``access.customer_search_scope``), so a search never tells an
    agent whose name a customer they may not see has.
    Six queries at most (the planner's estimate of the text and, for a text it
    expects to be common, how many of the newest tickets match, or for agents
    whether it is a tag on many tickets: ``search.py``;
    the ranked text, the names and pieces as one UNION of indexed lookups, the
    exact matches). A text in too many documents to
    rank is its text alone, a correlated test of each ticket's documents
    (``broad``, paged without a count: ``core.pagination.uncounted``); a narrow text whose names or
    pieces match too many tickets to list keeps the text's ids and tests the
    names and pieces as conditions (``broad`` too).
    """
    term = text_search.search_term_clean(term)
    if not term:
        return TicketSearch(Q(pk__in=[]), {})
    matching, parts = _search_parts(term, customers)
    ranks = text_search.ticket_text_ranked(term, internal=internal)
    if ranks is None:
        # Words in more documents than are ranked: the tickets their text matches, newest
        # first. One condition PostgreSQL can join on (an OR with names and pieces of the
        # subject would test every ticket it walks, one at a time).
        return TicketSearch(text_search.ticket_text_q(term, internal=internal), None, broad=True)
    # UNION ALL streams, so a broad term stops after the limit; duplicates
    # (a ticket matching twice) are folded here. A piece of a subject shorter than
    # SUBJECT_PIECE_MIN is not looked for: the subject's trigram index cannot find it (every
    # subject would be read), and its words and Chinese pairs are in the text already.
    listed = list(parts)
    if len(term) >= SUBJECT_PIECE_MIN:
        listed.insert(0, Ticket.objects.filter(subject__icontains=term).values("pk"))
    matches = listed[0].union(*listed[1:], all=True) if len(listed) > 1 else listed[0]
    rows = [row["pk"] for row in matches[: SEARCH_ID_LIST_LIMIT + 1]]
    if len(rows) <= SEARCH_ID_LIST_LIMIT and len(ranks) + len(rows) <= SEARCH_ID_LIST_LIMIT:
        for pk in rows:
            ranks[pk] = ranks.get(pk, 0.0) + text_search.RANK_PARTIAL
        for pk in _exact_matches(term, customers):
            ranks[pk] = ranks.get(pk, 0.0) + text_search.RANK_EXACT
        return TicketSearch(Q(AmongIds(F("pk"), sorted(ranks))), ranks)
    # The text is narrow (its tickets are known) but a name or a piece of a word matches
    # too many tickets to list: those are tested as conditions.
    return TicketSearch(Q(AmongIds(F("pk"), sorted(ranks))) | _search_broad(term, matching, parts), None, broad=True)


def ticket_search_for(user: Any, term: str) -> TicketSearch:
    """``ticket_search`` as ``user`` searches: names among the customers they may see,
    internal notes and tags for agents only."""
    return ticket_search(term, customers=customer_search_scope(user), internal=_internal(user))


def ticket_search_q(term: str, *, customers: QuerySet[Customer] | None = None, internal: bool = True) -> Q:
    """What ``ticket_search`` matches, as a condition (the id list when it is narrow)."""
    return ticket_search(term, customers=customers, internal=internal).condition


def ticket_search_broad_q(term: str, *, customers: QuerySet[Customer] | None = None, internal: bool = True) -> Q:
    """What ``ticket_search`` matches, as a condition each ticket is tested against,
    without fetching the matching ids first: no query runs until the caller's does."""
    term = text_search.search_term_clean(term)
    if not term:
        return Q(pk__in=[])
    matching, parts = _search_parts(term, customers)
    return _search_broad(term, matching, parts) | text_search.ticket_text_q(term, internal=internal)


def _exact_matches(term: str, customers: QuerySet[Customer] | None) -> list[int]:
    """The tickets of a reference, or of a customer's address, typed in full (one query; none otherwise)."""
    exact = Q()
    if term.upper().startswith("SD-"):
        exact |= Q(reference=term.upper())
    if "@" in term:
        # Every kind named, so the (kind, value) index finds the address: without the kind, an
        # agent's search read every identity and every ticket (200 ms at a million tickets).
        addressed = Identity.objects.filter(kind__in=IdentityKind.values, value=email_search_term(term))
        if customers is not None:
            addressed = addressed.filter(customer_id__in=customers.values("pk"))
        exact |= Q(customer_id__in=addressed.values("customer_id"))
    if not exact:
        return []
    return list(Ticket.objects.filter(exact).values_list("pk", flat=True)[:SEARCH_ID_LIST_LIMIT])


def _search_parts(term: str, customers: QuerySet[Customer] | None) -> tuple[QuerySet[Any], list[QuerySet[Any]]]:
    """The customers a term matches (by name or identity) and the ticket-id queries of a search."""
    if len(term) >= SUBJECT_PIECE_MIN:
        named = Customer.objects.filter(name__icontains=term)
        addressed = Identity.objects.filter(value__icontains=email_search_term(term))
    else:
        # Shorter than a trigram, a piece of a name or an address cannot be found by their
        # trigram indexes (every customer would be read): a name typed in full (a Chinese
        # name of two characters) is found by the name's own index, an address not at all.
        named = Customer.objects.filter(name=term)
        addressed = Identity.objects.none()
    if customers is not None:
        named = named.filter(pk__in=customers.values("pk"))
        addressed = addressed.filter(customer_id__in=customers.values("pk"))
    matching = named.values("pk").union(addressed.values("customer_id"))
    parts = [Ticket.objects.filter(customer_id__in=matching).values("pk")]
    if term.upper().startswith("SD-"):
        parts.append(Ticket.objects.filter(reference=term.upper()).values("pk"))
    elif term.isdigit():
        parts.append(Ticket.objects.filter(reference__endswith=f"-{term}").values("pk"))
    return matching, parts


def _search_broad(term: str, matching: QuerySet[Any], parts: list[QuerySet[Any]]) -> Q:
    broad = Q(subject__icontains=term) | Q(customer_id__in=matching)
    for part in parts[1:]:
        broad |= Q(pk__in=part)
    return broad


def ticket_detail(*, user: Any, reference: str) -> Ticket:
    from servicedesk.tickets.access import ticket_get_for

    ticket = ticket_get_for(user, reference)
    return (
        Ticket.objects.select_related(
            "customer", "customer__organization", "queue", "assignee", "topic", "merged_into", "sla_policy"
        )
        .prefetch_related("tags", _targets_prefetch())
        .get(pk=ticket.pk)
    )


def customer_tickets(*, user: Any, customer: Customer, exclude: Ticket | None = None, limit: int = 50) -> list[Ticket]:
    """That customer's other tickets on every channel, newest first, as far as ``user`` may see."""
    qs = tickets_visible_to(user).filter(customer=customer).select_related("queue").order_by("-created_at")
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    return list(qs[:limit])


def customer_list(*, user: Any, search: str = "") -> QuerySet[Customer]:
    qs = customers_visible_to(user).filter(merged_into__isnull=True)
    if search:
        qs = qs.filter(
            Q(name__icontains=search)
            | Q(pk__in=Identity.objects.filter(value__icontains=email_search_term(search)).values("customer_id"))
        )
    return qs.select_related("organization").prefetch_related("identities").order_by("name", "pk")


def inbound_message_seen(*, channel: str, external_id: str) -> bool:
    """Whether intake already stored the contact (channel, external id): a re-post
    that ``inbound_message_receive`` will answer as a duplicate (unique index)."""
    return Message.objects.filter(channel=channel, external_id=external_id[:255]).exists()


def customer_first_contact(*, customer: Customer) -> datetime:
    """When ``customer`` first contacted the desk: the earliest of the record's creation, their first
    ticket and their first message, customers merged into them included. History imported with its
    original times counts from then, not from the day of the import (which is the record's creation)."""
    ids = [customer.pk, *Customer.objects.filter(merged_into=customer).values_list("pk", flat=True)]
    first_ticket = Ticket.objects.filter(customer_id__in=ids).aggregate(first=Min("created_at"))["first"]
    first_message = Message.objects.filter(author_customer_id__in=ids).aggregate(first=Min("created_at"))["first"]
    return min(when for when in (customer.created_at, first_ticket, first_message) if when is not None)
