"""Applying validated records through the domain services.

Each kind has a ``prepare`` step that only reads (it resolves references and
decides whether the record was imported before, raising ``RecordError``) and
returns the write step, or None when there is nothing to do. The runner can
therefore skip a bad record without having written anything, and only write
failures (a refused status transition, a constraint) need a rollback.

The write step goes to one of two places. With ``Applier.batch`` set (the
bulk path) customer, ticket, message, status, priority, assign and rating
records are recorded in a ``HistoryBatch`` (services/history.py) that the
runner writes once per batch; its methods refuse a record before changing
anything. The kinds in ``RARE_KINDS``, and every kind when no batch is set
(the record-by-record path), call the single services directly.

The idempotency rule is in ``servicedesk/tickets/importer/__init__.py``.
Configuration records (``calendar``, ``sla_policy``) are known by their id,
kept as the row's slug. Re-importing an id with the same content is "already
imported"; with different content the stored calendar or policy is updated to
the record: time zone, default flag, opening windows and the set of holidays
(dates no longer listed are removed; dates kept keep their names), or rank,
calendar, conditions and the set of targets. Names edited in the admin are
kept. A calendar imported as the default takes the default from any other.

Live-channel records: a ``session`` is known by its id (``Session.external_id``)
and is written once; a ``presence`` by its agent and instant (a different state
for the same instant replaces the stored one); a ``cost`` by its period (a
different amount or currency replaces the stored one). Presence is one history
with routing's availability (docs/architecture.md, "Presence"): imported rows
(source ``import``) must lie before the agent's first row the desk recorded, so
an import never changes an agent's current state nor rewrites what the desk
saw; a later record is refused with its reason. On the bulk path
sessions and presence states wait in the applier until the batch's tickets and
customers are written (``live_flush``), then go in with one statement each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import sees_all_queues
from servicedesk.sla.models import BusinessCalendar, Holiday, OpeningWindow, SlaPolicy, SlaTarget
from servicedesk.tickets.events import Actor
from servicedesk.tickets.importer.idmap import IdMap, LRUCache, TicketRef
from servicedesk.tickets.importer.records import Record, RecordError
from servicedesk.tickets.models import (
    Customer,
    Identity,
    IdentityKind,
    MessageKind,
    OperatingCost,
    Organization,
    Queue,
    Session,
    Ticket,
    Topic,
)
from servicedesk.tickets.models.sessions import PresenceSource
from servicedesk.tickets.services.customers import (
    InvalidIdentity,
    customer_create,
    customer_merge,
    identity_normalize,
    organization_get_or_create,
)
from servicedesk.tickets.services.history import HistoryBatch, ticket_customer_message_record
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.sessions import agent_presence_record_many, operating_cost_set, sessions_record
from servicedesk.tickets.services.tickets import (
    queue_default,
    ticket_assign,
    ticket_create,
    ticket_merge,
    ticket_priority_change,
    ticket_rate,
    ticket_status_change,
)

SOURCE = "import"
Write = Callable[[], None]
# Kinds whose records carry their own id, known by it as an external id.
KINDS_WITH_ID = ("agent", "customer", "ticket", "message", "session")
# Kinds without an id, known by their key in the ImportedRecord ledger.
LEDGER_KINDS = frozenset({"status", "priority", "assign", "merge", "identity_merge", "rating"})
# Kinds that go through the single services even on the bulk path.
RARE_KINDS = frozenset({"agent", "merge", "identity_merge", "calendar", "sla_policy", "cost"})


def message_external_id(record_id: str) -> str:
    return f"import:{record_id}"


class Applier:
    def __init__(self, *, cache_size: int = 5000) -> None:
        self.ids = IdMap(size=cache_size)
        self._queues = LRUCache(500)
        self._topics = LRUCache(500)
        self._organizations = LRUCache(500)
        self._memberships = LRUCache(cache_size)
        self._groups: dict[str, Group] = {}
        self._default_queue: Queue | None = None
        # External ids of this batch's records that are already stored, per kind.
        self.existing: dict[str, set[str]] = {kind: set() for kind in KINDS_WITH_ID}
        # Ledger keys of this batch's records already applied (stored, or earlier in the batch).
        self.recorded: set[str] = set()
        # The bulk path: the batch being built, and the identities taken (stored or in it).
        self.batch: HistoryBatch | None = None
        self.taken: set[tuple[str, str]] = set()
        # Stored (or already applied) presence states of this batch's records, by (agent id, at).
        self.presence_states: dict[tuple[str, datetime], str] = {}
        # The first presence the desk recorded, per agent id of this batch's presence records:
        # imported presence must be earlier.
        self.presence_desk_since: dict[str, datetime] = {}
        # The bulk path: sessions and presence states written after the batch (live_flush).
        self._sessions: list[Session] = []
        self._presence: list[tuple[int, datetime, str]] = []

    def forget(self) -> None:
        """Drop every cached row: after a rollback some of them no longer exist."""
        self.ids.clear()
        self._queues.clear()
        self._topics.clear()
        self._organizations.clear()
        self._memberships.clear()
        self._groups.clear()
        self._default_queue = None
        self._sessions.clear()
        self._presence.clear()

    def live_flush(self) -> None:
        """Write the sessions and presence states held for the batch just written."""
        sessions, presence = self._sessions, self._presence
        self._sessions, self._presence = [], []
        sessions_record(sessions=sessions)
        agent_presence_record_many(rows=presence, source=PresenceSource.IMPORT)

    def prepare(self, record: Record) -> Write | None:
        if record.kind in LEDGER_KINDS and record.key in self.recorded:
            return None
        return getattr(self, f"_prepare_{record.kind}")(record)

    # --- lookups -----------------------------------------------------------

    def _agent(self, external_id: str, key: str = "agent") -> User:
        user = self.ids.agent(external_id)
        if user is None:
            raise RecordError(f"unknown agent {external_id!r} in '{key}'")
        return user

    def _customer(self, external_id: str, key: str = "customer") -> int:
        pk = self.ids.customer(external_id)
        if pk is None:
            raise RecordError(f"unknown customer {external_id!r} in '{key}'")
        return pk

    def _ticket(self, external_id: str, at: datetime | None = None, key: str = "ticket") -> TicketRef:
        ref = self.ids.ticket(external_id)
        if ref is None:
            raise RecordError(f"unknown ticket {external_id!r} in '{key}'")
        if at is not None and at < ref.created_at:
            raise RecordError(f"'at' is before ticket {external_id!r} was created")
        return ref

    def _queue(self, slug: str) -> Queue:
        queue = self._queues.get(slug)
        if queue is None:
            queue, _created = Queue.objects.get_or_create(slug=slug[:50], defaults={"name": _title(slug)})
            self._queues.put(slug, queue)
        return queue

    def _topic(self, slug: str) -> Topic:
        topic = self._topics.get(slug)
        if topic is None:
            topic, _created = Topic.objects.get_or_create(slug=slug[:50], defaults={"name": _title(slug)})
            self._topics.put(slug, topic)
        return topic

    def _queue_default(self) -> Queue:
        if self._default_queue is None:
            self._default_queue = queue_default()
        return self._default_queue

    def _organization(self, name: str, tier: str | None) -> Organization:
        key = (name, tier)
        org = self._organizations.get(key)
        if org is None:
            org = organization_get_or_create(name=name, tier=tier)
            self._organizations.put(key, org)
        return org

    def _member(self, user: User, queue_id: int) -> None:
        """Make an agent a member of a queue they work in, so access rules let them see it."""
        if self.batch is not None:
            self.batch.member_add(user=user, queue_id=queue_id)
            return
        if sees_all_queues(user) or self._memberships.get((user.pk, queue_id)):
            return
        Queue.members.through.objects.get_or_create(queue_id=queue_id, user_id=user.pk)
        self._memberships.put((user.pk, queue_id), True)

    # --- kinds ---------------------------------------------------------------

    def _prepare_agent(self, record: Record) -> Write | None:
        if record["id"] in self.existing["agent"]:
            return None
        email = record["email"].strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise RecordError(f"'email' is not a valid email address: {record['email']!r}") from None
        if User.objects.filter(username=email).exists():
            raise RecordError(f"a user {email!r} already exists without this agent id")
        group = self._groups.get(record["role"])
        if group is None:
            group = Group.objects.filter(name=record["role"]).first()
            if group is None:
                raise RecordError(f"the role group {record['role']!r} is missing (run migrate)")
            self._groups[record["role"]] = group

        def write() -> None:
            user = User(
                username=email, email=email, display_name=record.get("name", "")[:200], external_id=record["id"]
            )
            user.set_unusable_password()
            user.save(force_insert=True)
            user.groups.add(group)
            user._sd_group_names = {group.name}  # type: ignore[attr-defined]
            self.existing["agent"].add(record["id"])
            self.ids.agents.put(record["id"], user)

        return write

    def _prepare_customer(self, record: Record) -> Write | None:
        if record["id"] in self.existing["customer"]:
            return None
        identities: list[tuple[str, str]] = []
        try:
            identities += [
                (IdentityKind.EMAIL, identity_normalize(kind=IdentityKind.EMAIL, value=v))
                for v in record.get("emails", [])
            ]
            identities += [
                (IdentityKind.PHONE, identity_normalize(kind=IdentityKind.PHONE, value=v))
                for v in record.get("phones", [])
            ]
        except InvalidIdentity as exc:
            raise RecordError(exc.message) from None
        if self.batch is not None:
            owner = next((identity for identity in identities if identity in self.taken), None)
            if owner is not None:
                raise RecordError(f"the {owner[0]} {owner[1]!r} already belongs to another customer")
        elif identities:
            taken = Q()
            for kind, value in identities:
                taken |= Q(kind=kind, value=value)
            owner = Identity.objects.filter(taken).values_list("kind", "value").first()
            if owner is not None:
                raise RecordError(f"the {owner[0]} {owner[1]!r} already belongs to another customer")
        if "tier" in record.values and "organization" not in record.values:
            raise RecordError("'tier' needs 'organization'")

        def write() -> None:
            organization = None
            if "organization" in record.values:
                organization = self._organization(record["organization"], record.get("tier"))
            if self.batch is not None:
                customer = self.batch.customer_add(
                    name=record.get("name", ""),
                    identities=identities,
                    organization=organization,
                    external_id=record["id"],
                )
                self.taken.update(identities)
                self.existing["customer"].add(record["id"])
                self.ids.pending_customers[record["id"]] = customer.pk
                return
            customer = customer_create(
                name=record.get("name", ""),
                identities=identities,
                organization=organization,
                external_id=record["id"],
            )
            self.existing["customer"].add(record["id"])
            self.ids.customers.put(record["id"], customer.pk)

        return write

    def _prepare_ticket(self, record: Record) -> Write | None:
        if record["id"] in self.existing["ticket"]:
            return None
        customer_pk = self._customer(record["customer"])
        agent = self._agent(record["agent"]) if "agent" in record.values else None
        same_issue = (
            self._ticket(record["same_issue_as"], key="same_issue_as") if "same_issue_as" in record.values else None
        )
        at = record["at"]

        def write() -> None:
            topic = self._topic(record["topic"]) if "topic" in record.values else None
            if "queue" in record.values:
                queue = self._queue(record["queue"])
            elif topic is not None and topic.queue_id:
                queue = topic.queue  # type: ignore[assignment]
            else:
                queue = self._queue_default()
            customer = Customer(pk=customer_pk)
            if agent is not None:
                self._member(agent, queue.pk)
                actor = Actor.agent(agent, source=SOURCE)
            else:
                actor = Actor.of_customer(customer, source=SOURCE)
            if self.batch is not None:
                ticket = self.batch.ticket_add(
                    customer=customer,
                    subject=record["subject"],
                    channel=record["channel"],
                    actor=actor,
                    initiator=record.get("initiator", "inbound"),
                    queue=queue,
                    topic=topic,
                    priority=record.get("priority", "normal"),
                    at=at,
                    external_id=record["id"],
                    same_issue_as_id=same_issue.pk if same_issue else None,
                    is_spam=record.get("spam", False),
                    is_deleted=record.get("deleted", False),
                )
                self.existing["ticket"].add(record["id"])
                self.ids.pending_tickets[record["id"]] = TicketRef(
                    ticket.pk, ticket.channel, customer_pk, queue.pk, at, None
                )
                return
            ticket = ticket_create(
                customer=customer,
                subject=record["subject"],
                channel=record["channel"],
                actor=actor,
                initiator=record.get("initiator", "inbound"),
                queue=queue,
                topic=topic,
                priority=record.get("priority", "normal"),
                at=at,
                external_id=record["id"],
                same_issue_as=Ticket(pk=same_issue.pk) if same_issue else None,
                is_spam=record.get("spam", False),
                is_deleted=record.get("deleted", False),
            )
            self.existing["ticket"].add(record["id"])
            self.ids.tickets.put(
                record["id"],
                TicketRef(ticket.pk, ticket.channel, customer_pk, queue.pk, at, None),
            )

        return write

    def _prepare_message(self, record: Record) -> Write | None:
        if record["id"] in self.existing["message"]:
            return None
        at = record["at"]
        ref = self._ticket(record["ticket"], at)
        if ref.merged_into_id:
            raise RecordError(f"ticket {record['ticket']!r} was merged into another ticket")
        kind = record["type"]
        status = record.get("status")
        external_id = message_external_id(record["id"])
        if kind == MessageKind.PUBLIC_ENDUSER:
            customer = Customer(pk=self._customer(record["author"], key="author"))
            batch = self.batch
            if batch is not None:

                def write_batch() -> None:
                    assert batch is not None
                    batch.message_add(
                        ticket=batch.ticket(ref.pk),
                        kind=kind,
                        text=record["body"],
                        at=at,
                        external_id=external_id,
                        author_customer=customer,
                        status=status,
                        actor=Actor.of_customer(customer, source=SOURCE),
                    )
                    self.existing["message"].add(record["id"])

                return write_batch

            def write() -> None:
                ticket_customer_message_record(
                    ticket=ref.stub(),
                    customer=customer,
                    text=record["body"],
                    at=at,
                    external_id=external_id,
                    status=status,
                )
                self.existing["message"].add(record["id"])

            return write
        author = self._agent(record["author"], key="author") if kind != MessageKind.SYSTEM else None
        actor = Actor.agent(author, source=SOURCE) if author else Actor.system(source=SOURCE)
        batch = self.batch
        if batch is not None:

            def write_agent_batch() -> None:
                batch.message_add(
                    ticket=batch.ticket(ref.pk),
                    kind=kind,
                    text=record["body"],
                    at=at,
                    external_id=external_id,
                    author_user=author,
                    status=status,
                    actor=actor,
                )
                self.existing["message"].add(record["id"])

            return write_agent_batch

        def write_agent() -> None:
            if kind == MessageKind.PUBLIC_AGENT:
                ticket_reply_create(
                    ticket=ref.stub(),
                    author=author,
                    text=record["body"],
                    status=status,
                    actor=actor,
                    at=at,
                    deliver=False,
                    external_id=external_id,
                )
            else:
                ticket_note_create(
                    ticket=ref.stub(),
                    author=author,
                    text=record["body"],
                    status=status,
                    actor=actor,
                    at=at,
                    kind=kind,
                    external_id=external_id,
                )
            self.existing["message"].add(record["id"])

        return write_agent

    def _prepare_status(self, record: Record) -> Write | None:
        at = record["at"]
        ref = self._ticket(record["ticket"], at)
        by = self._agent(record["by"], key="by") if "by" in record.values else None
        if ref.merged_into_id:
            raise RecordError(f"ticket {record['ticket']!r} was merged into another ticket")
        actor = Actor.agent(by, source=SOURCE) if by else Actor.system(source=SOURCE)
        batch = self.batch
        if batch is not None:
            return lambda: batch.status_change(ticket=batch.ticket(ref.pk), status=record["status"], actor=actor, at=at)
        return lambda: _discard(ticket_status_change(ticket=ref.stub(), status=record["status"], actor=actor, at=at))

    def _prepare_priority(self, record: Record) -> Write | None:
        at = record["at"]
        ref = self._ticket(record["ticket"], at)
        actor = Actor.system(source=SOURCE)
        batch = self.batch
        if batch is not None:
            return lambda: batch.priority_change(
                ticket=batch.ticket(ref.pk), priority=record["priority"], actor=actor, at=at
            )
        return lambda: _discard(
            ticket_priority_change(ticket=ref.stub(), priority=record["priority"], actor=actor, at=at)
        )

    def _prepare_assign(self, record: Record) -> Write | None:
        at = record["at"]
        ref = self._ticket(record["ticket"], at)
        agent = self._agent(record["agent"]) if record["agent"] is not None else None
        if agent is not None and not agent.is_active:
            raise RecordError(f"agent {record['agent']!r} is not active")
        actor = Actor.system(source=SOURCE)
        batch = self.batch
        if batch is not None:
            return lambda: batch.assign(
                ticket=batch.ticket(ref.pk), assignee=agent, actor=actor, at=at, add_member=True
            )

        def write() -> None:
            if agent is not None:
                self._member(agent, ref.queue_id)
            ticket_assign(ticket=ref.stub(), assignee=agent, actor=actor, at=at)

        return write

    def _prepare_merge(self, record: Record) -> Write | None:
        at = record["at"]
        source = self._ticket(record["ticket"], at)
        target = self._ticket(record["into"], at, key="into")
        if source.merged_into_id == target.pk:
            return None
        if source.pk == target.pk:
            raise RecordError("a ticket cannot be merged into itself")
        if source.merged_into_id:
            raise RecordError(f"ticket {record['ticket']!r} was already merged into another ticket")
        if target.merged_into_id:
            raise RecordError(f"ticket {record['into']!r} was itself merged into another ticket")
        if source.customer_id != target.customer_id:
            raise RecordError("only tickets of the same customer can be merged")

        def write() -> None:
            ticket_merge(source=source.stub(), target=target.stub(), actor=Actor.system(source=SOURCE), at=at)
            source.merged_into_id = target.pk

        return write

    def _prepare_identity_merge(self, record: Record) -> Write | None:
        source = Customer.objects.filter(external_id=record["from"]).first()
        if source is None:
            raise RecordError(f"unknown customer {record['from']!r} in 'from'")
        target_pk = self._customer(record["into"], key="into")
        if source.merged_into_id == target_pk:
            return None
        if source.pk == target_pk:
            raise RecordError("a customer cannot be merged into itself")
        if source.merged_into_id:
            raise RecordError(f"customer {record['from']!r} was already merged into another customer")
        target = Customer.objects.get(pk=target_pk)

        def write() -> None:
            customer_merge(source=source, target=target, actor=Actor.system(source=SOURCE), at=record["at"])
            # Cached customers and tickets may point to the source record.
            self.ids.customers.clear()
            self.ids.tickets.clear()

        return write

    def _prepare_rating(self, record: Record) -> Write | None:
        at = record["at"]
        ref = self._ticket(record["ticket"], at)
        key = f"import:{ref.pk}:{at.isoformat()}"
        actor = Actor.of_customer(Customer(pk=ref.customer_id), source=SOURCE)
        batch = self.batch
        if batch is not None:
            return lambda: _discard(
                batch.rate(
                    ticket=batch.ticket(ref.pk),
                    score=record["score"],
                    comment=record.get("comment", ""),
                    actor=actor,
                    at=at,
                    external_key=key,
                )
            )
        return lambda: _discard(
            ticket_rate(
                ticket=ref.stub(),
                score=record["score"],
                comment=record.get("comment", ""),
                actor=actor,
                at=at,
                external_key=key,
            )
        )

    def _prepare_calendar(self, record: Record) -> Write | None:
        slug = record["id"]
        wanted = (record["timezone"], record.get("default", False), record["hours"], record.get("holidays", ()))
        stored = BusinessCalendar.objects.filter(slug=slug).prefetch_related("windows", "holidays").first()
        if stored is not None and _calendar_content(stored) == wanted:
            return None
        time_zone, is_default, windows, holidays = wanted

        def write() -> None:
            with transaction.atomic():
                if is_default:
                    BusinessCalendar.objects.filter(is_default=True).exclude(slug=slug).update(is_default=False)
                calendar, _created = BusinessCalendar.objects.update_or_create(
                    slug=slug,
                    defaults={"time_zone": time_zone, "is_default": is_default},
                    create_defaults={"time_zone": time_zone, "is_default": is_default, "name": _title(slug)},
                )
                OpeningWindow.objects.filter(calendar=calendar).delete()
                OpeningWindow.objects.bulk_create(
                    OpeningWindow(calendar=calendar, weekday=weekday, start_minute=start, end_minute=end)
                    for weekday, start, end in windows
                )
                Holiday.objects.filter(calendar=calendar).exclude(date__in=holidays).delete()
                Holiday.objects.bulk_create(
                    (Holiday(calendar=calendar, date=day) for day in holidays),
                    ignore_conflicts=True,
                )

        return write

    def _prepare_sla_policy(self, record: Record) -> Write | None:
        slug, rank = record["id"], record["rank"]
        calendar = BusinessCalendar.objects.filter(slug=record["calendar"]).first()
        if calendar is None:
            raise RecordError(f"unknown calendar {record['calendar']!r} in 'calendar'")
        holder = SlaPolicy.objects.filter(rank=rank).exclude(slug=slug).values_list("slug", flat=True).first()
        if holder is not None:
            raise RecordError(f"rank {rank} is already held by policy {holder!r}")
        match = record.get("match", {})
        targets = {
            priority: (target["first_reply"], target["resolution"], target["hours"])
            for priority, target in record["targets"].items()
        }
        stored = SlaPolicy.objects.filter(slug=slug).prefetch_related("targets").first()
        if stored is not None and _policy_content(stored) == (rank, calendar.pk, match, targets):
            return None

        def write() -> None:
            with transaction.atomic():
                policy, _created = SlaPolicy.objects.update_or_create(
                    slug=slug,
                    defaults={"rank": rank, "calendar": calendar, "match": match},
                    create_defaults={"rank": rank, "calendar": calendar, "match": match, "name": _title(slug)},
                )
                SlaTarget.objects.filter(policy=policy).delete()
                SlaTarget.objects.bulk_create(
                    SlaTarget(
                        policy=policy,
                        priority=priority,
                        first_reply_minutes=first_reply,
                        resolution_minutes=resolution,
                        hours=hours,
                    )
                    for priority, (first_reply, resolution, hours) in targets.items()
                )

        return write

    def _prepare_session(self, record: Record) -> Write | None:
        if record["id"] in self.existing["session"]:
            return None
        customer_pk = self._customer(record["customer"])
        agent = self._agent(record["agent"]) if "agent" in record.values else None
        ticket = self._ticket(record["ticket"]) if "ticket" in record.values else None
        session = Session(
            channel=record["channel"],
            customer_id=customer_pk,
            ticket_id=ticket.pk if ticket else None,
            agent_id=agent.pk if agent else None,
            requested_at=record["requested_at"],
            answered_at=record.get("answered_at"),
            abandoned_at=record.get("abandoned_at"),
            ended_at=record.get("ended_at"),
            after_work_seconds=record.get("after_work_seconds", 0),
            external_id=record["id"],
        )

        def write() -> None:
            if self.batch is not None:
                self._sessions.append(session)
            else:
                sessions_record(sessions=[session])
            self.existing["session"].add(record["id"])

        return write

    def _prepare_presence(self, record: Record) -> Write | None:
        key = (record["agent"], record["at"])
        if self.presence_states.get(key) == record["state"]:
            return None
        since = self.presence_desk_since.get(record["agent"])
        if since is not None and record["at"] >= since:
            raise RecordError(
                f"'at' is not before agent {record['agent']!r}'s first presence recorded in the desk"
                f" ({since.isoformat()}); from then on the desk's presence history is kept"
            )
        agent = self._agent(record["agent"])
        row = (agent.pk, record["at"], record["state"])

        def write() -> None:
            if self.batch is not None:
                self._presence.append(row)
            else:
                agent_presence_record_many(rows=[row], source=PresenceSource.IMPORT)
            self.presence_states[key] = record["state"]

        return write

    def _prepare_cost(self, record: Record) -> Write | None:
        start, end = record["period_start"], record["period_end"]
        amount: Decimal = record["amount"]
        stored = (
            OperatingCost.objects.filter(period_start=start, period_end=end).values_list("amount", "currency").first()
        )
        if stored == (amount, record["currency"]):
            return None
        return lambda: operating_cost_set(
            period_start=start, period_end=end, amount=amount, currency=record["currency"]
        )


def _calendar_content(calendar: BusinessCalendar) -> tuple:
    """A stored calendar in the shape of a parsed calendar record, to compare them."""
    windows = tuple(sorted((w.weekday, w.start_minute, w.end_minute) for w in calendar.windows.all()))
    holidays = tuple(sorted(h.date for h in calendar.holidays.all()))
    return (calendar.time_zone, calendar.is_default, windows, holidays)


def _policy_content(policy: SlaPolicy) -> tuple:
    """A stored policy in the shape of a parsed sla_policy record, to compare them."""
    targets = {t.priority: (t.first_reply_minutes, t.resolution_minutes, t.hours) for t in policy.targets.all()}
    return (policy.rank, policy.calendar_id, policy.match, targets)


def _title(slug: str) -> str:
    return slug.replace("-", " ").replace("_", " ").title()[:200]


def _discard(_value: object) -> None:
    return None
