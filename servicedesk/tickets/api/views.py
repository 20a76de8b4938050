"""REST API v1: tickets, their messages, and customers.

Every read goes through ``access`` and ``selectors`` (what the caller may not
see does not exist: 404), every write through a service. Service refusals
(``ApplicationError``) become 400 JSON with the field's message in
``servicedesk.core.api.exception_handler``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from servicedesk.accounts.auth import signed_in_user
from servicedesk.accounts.roles import sees_all_queues
from servicedesk.core import errors
from servicedesk.core.errors import ApplicationError, PermissionDenied
from servicedesk.core.pagination import COUNT_CAP, UNCOUNTED_ROWS, CappedPaginator
from servicedesk.core.prepared import planned_for_values
from servicedesk.tickets.access import customer_of_user, customers_conceal, messages_visible_to
from servicedesk.tickets.api.filters import ticket_filters_from
from servicedesk.tickets.api.permissions import AgentOrCustomer, AgentsChangeTickets, caller_is_agent
from servicedesk.tickets.api.serializers import (
    CustomerDetailSerializer,
    CustomerMessageCreateSerializer,
    CustomerSerializer,
    CustomerTicketCreateSerializer,
    MessageCreateSerializer,
    MessageSerializer,
    TicketCreateSerializer,
    TicketDetailSerializer,
    TicketSerializer,
    TicketUpdateSerializer,
    TicketVersionMismatchSerializer,
    email_identity,
)
from servicedesk.tickets.events import Actor
from servicedesk.tickets.inbound import InboundMessage, SenderIdentity
from servicedesk.tickets.models import Customer, Message, Ticket
from servicedesk.tickets.selectors import (
    DUE_VIEWS,
    TICKET_SORT_ALIASES,
    TICKET_SORTS,
    customer_list,
    customer_tickets,
    ticket_detail,
    ticket_list,
)
from servicedesk.tickets.services.delivery import message_delivery_retry
from servicedesk.tickets.services.idempotency import (
    IDEMPOTENCY_HEADER,
    IdempotentRequest,
    idempotent_request,
    request_digest,
)
from servicedesk.tickets.services.intake import inbound_message_receive
from servicedesk.tickets.services.opening import (
    TicketOpening,
    ticket_open_for_agent,
    ticket_open_for_customer,
)
from servicedesk.tickets.services.opening import external_id_for as opening_external_id
from servicedesk.tickets.services.replies import ticket_note_create, ticket_reply_create
from servicedesk.tickets.services.tickets import TicketVersionMismatch, ticket_update, ticket_version_require

IDEMPOTENCY_KEY_MAX = 200
CUSTOMER_HISTORY_LIMIT = 100


class Pagination(PageNumberPagination):
    """Pages of 25 (``page_size`` up to 100); ``count`` stops at ``COUNT_CAP`` with
    ``count_capped`` true past it (servicedesk/core/pagination.py)."""

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
    django_paginator_class = CappedPaginator

    def get_paginated_response(self, data: Any) -> Response:
        response = super().get_paginated_response(data)
        assert self.page is not None
        response.data["count_capped"] = self.page.paginator.count_capped  # type: ignore[attr-defined]
        return response

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count_capped"] = {
            "type": "boolean",
            "description": (
                f"True when the list holds more items than it counted: past {COUNT_CAP} (count is then "
                f"{COUNT_CAP}), or, for a search too broad to rank (docs/search.md), past this page (count "
                f"is then the items up to the end of this page, and next is set up to item {UNCOUNTED_ROWS})."
            ),
        }
        answer["required"] = [*answer.get("required", []), "count_capped"]
        return answer


def idempotency_key(request: Request) -> str | None:
    """The caller's Idempotency-Key header (None when not sent); refused when too long."""
    key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip()
    if not key:
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise ApplicationError(
            str(_("The Idempotency-Key header is longer than %(n)d characters.") % {"n": IDEMPOTENCY_KEY_MAX}),
            field=IDEMPOTENCY_HEADER,
        )
    return key


def idempotent(request: Request) -> AbstractContextManager[IdempotentRequest]:
    """The request's write under its Idempotency-Key: a repeat replays, another request with the key is 422."""
    return idempotent_request(
        user=request.user,
        key=idempotency_key(request),
        digest=request_digest(method=request.method or "", path=request.path, body=request.data),
    )


def external_id_for(request: Request) -> str | None:
    """The Idempotency-Key as a message external id, scoped to the caller.

    Scoping by user keeps one caller's key from ever answering with another
    caller's ticket.
    """
    return opening_external_id(signed_in_user(request), idempotency_key(request))


def caller_customer(request: Request) -> Customer:
    """The customer record behind a customer's sign-in, with the email address they write from."""
    customer = customer_of_user(request.user)
    if customer is None:
        raise PermissionDenied(str(_("Only agents and customers can do this.")))
    return customer


def sender_of(customer: Customer) -> SenderIdentity:
    identity = email_identity(customer)
    if identity is None:
        raise ApplicationError(str(_("Your customer record has no email address to write from.")))
    return SenderIdentity(kind=identity.kind, value=identity.value, name=customer.name)


REFERENCE_PARAMETER = OpenApiParameter(
    "reference", OpenApiTypes.STR, OpenApiParameter.PATH, description=_("Ticket reference, e.g. SD-1001.")
)
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=_(
        "Repeat a request safely: the same key with the same request returns the first result (200) instead of "
        "creating again; the same key with a different request is refused (422)."
    ),
)
IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=_("The ETag the ticket was read with; a changed ticket answers 412."),
)
TICKET_FILTER_PARAMETERS = [
    OpenApiParameter("status", OpenApiTypes.STR, description=_("Comma-separated statuses.")),
    OpenApiParameter("queue", OpenApiTypes.STR, description=_("Comma-separated queue slugs.")),
    OpenApiParameter("assignee", OpenApiTypes.STR, description=_("An agent id, 'me' or 'none'.")),
    OpenApiParameter("channel", OpenApiTypes.STR, description=_("Comma-separated channels.")),
    OpenApiParameter("priority", OpenApiTypes.STR, description=_("Comma-separated priorities.")),
    OpenApiParameter("customer", OpenApiTypes.INT, description=_("Customer id.")),
    OpenApiParameter("search", OpenApiTypes.STR, description=_("Reference, subject, customer name or address.")),
    OpenApiParameter(
        "due",
        OpenApiTypes.STR,
        enum=list(DUE_VIEWS),
        description=_("hour: the next SLA due instant is within the next hour; overdue: it has passed."),
    ),
    OpenApiParameter(
        "due_after", OpenApiTypes.DATETIME, description=_("Next SLA due instant at or after this ISO 8601 instant.")
    ),
    OpenApiParameter(
        "due_before", OpenApiTypes.DATETIME, description=_("Next SLA due instant before this ISO 8601 instant.")
    ),
    OpenApiParameter(
        "breaching_within",
        OpenApiTypes.INT,
        description=_(
            "Minutes, a positive whole number: the next SLA due instant is after now and at most this far ahead."
        ),
    ),
    OpenApiParameter(
        "sort",
        OpenApiTypes.STR,
        enum=[*TICKET_SORTS, *TICKET_SORT_ALIASES],
        description=_(
            "Sort order; default -updated (due, with the due filters). due / sla_due_at: the next SLA due "
            "instant, soonest first, tickets without one last; -due / -sla_due_at is its exact reverse."
        ),
    ),
    OpenApiParameter(
        "ordering", OpenApiTypes.STR, enum=[*TICKET_SORTS, *TICKET_SORT_ALIASES], description=_("Same as sort.")
    ),
]


# --- Tickets -----------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="List tickets",
        description="Tickets the caller may see: agents their queues' tickets, customers their own.",
        parameters=TICKET_FILTER_PARAMETERS,
        responses=TicketSerializer(many=True),
    ),
    post=extend_schema(
        summary="Open a ticket",
        description=(
            "Agents send the fields below. A signed-in customer sends only subject, text and an optional "
            "public topic, and receives the automatic acknowledgement. With an Idempotency-Key the body is "
            "checked first (400 with the fields' errors, the key left unused); a valid request is kept with "
            "the key: the same request again answers 200 with the first ticket, another request with the "
            "key 422."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=TicketCreateSerializer,
        responses={201: TicketDetailSerializer, 200: TicketDetailSerializer},
    ),
)
class TicketListView(generics.ListCreateAPIView):
    serializer_class = TicketSerializer
    pagination_class = Pagination
    filter_backends: list[Any] = []
    permission_classes = [IsAuthenticated, AgentOrCustomer]

    def get_queryset(self) -> QuerySet[Ticket]:
        filters = ticket_filters_from(self.request.query_params, agent=caller_is_agent(self.request))
        return ticket_list(user=self.request.user, filters=filters)

    def paginate_queryset(self, queryset: QuerySet[Any] | Sequence[Any]) -> Sequence[Any] | None:
        page = super().paginate_queryset(queryset)
        if page is not None:
            customers_conceal(self.request.user, page)
        return page

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Planned for the caller's values, never prepared (core/prepared.py): the search and the filters.
        with planned_for_values():
            return super().list(request, *args, **kwargs)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        agent = caller_is_agent(request)
        opening = self._open(request, agent=agent)
        # The agent sees of the customer what they may, and the address they gave.
        addresses: tuple[tuple[str, str], ...] = (("email", opening.address),) if agent and opening.address else ()
        # Opening a ticket gives it its reference in the same transaction.
        if opening.ticket.reference is None:
            raise exceptions.NotFound()
        body = TicketDetailSerializer(
            visible_ticket(request.user, opening.ticket.reference, addresses=addresses),
            context=self.get_serializer_context(),
        ).data
        return Response(body, status=status.HTTP_201_CREATED if opening.created else status.HTTP_200_OK)

    def _open(self, request: Request, *, agent: bool) -> TicketOpening:
        """The opening service under the request's Idempotency-Key and the digest of the request."""
        key = idempotency_key(request)
        digest = request_digest(method=request.method or "", path=request.path, body=request.data)
        if agent:
            agent_serializer = TicketCreateSerializer(data=request.data, context=self.get_serializer_context())
            agent_serializer.is_valid(raise_exception=True)
            data = agent_serializer.validated_data
            return ticket_open_for_agent(
                agent=signed_in_user(request),
                customer_email=data["customer_email"],
                customer=data.get("customer"),
                customer_name=data.get("customer_name", ""),
                subject=data["subject"],
                text=data["text"],
                initiator=data["initiator"],
                queue=data.get("queue"),
                topic=data.get("topic"),
                priority=data["priority"],
                acknowledge=data["acknowledge"],
                idempotency_key=key,
                request_digest=digest,
            )
        customer = caller_customer(request)
        customer_serializer = CustomerTicketCreateSerializer(data=request.data, context=self.get_serializer_context())
        customer_serializer.is_valid(raise_exception=True)
        data = customer_serializer.validated_data
        return ticket_open_for_customer(
            user=signed_in_user(request),
            sender=sender_of(customer),
            subject=data["subject"],
            text=data["text"],
            topic=data.get("topic"),
            idempotency_key=key,
            request_digest=digest,
        )


def written_once(write: Callable[[], Message], *, lookup: Callable[[], Message | None]) -> tuple[Message, bool]:
    """``write`` in a savepoint, and whether it wrote. A message stored earlier under the same
    caller-scoped key (a key first used before keys were kept with their request) is the answer
    instead of the unique constraint's IntegrityError, or of the If-Match that request moved past."""
    try:
        with transaction.atomic():
            return write(), True
    except (IntegrityError, TicketVersionMismatch):
        earlier = lookup()
        if earlier is None:
            raise
        return earlier, False


def visible_ticket(user: Any, reference: str, *, addresses: tuple[tuple[str, str], ...] = ()) -> Ticket:
    """The ticket as ``user`` may see it: a customer they may not see is a stand-in
    showing only ``addresses`` (access.customers_conceal)."""
    try:
        ticket = ticket_detail(user=user, reference=reference)
    except errors.NotFound:
        raise exceptions.NotFound() from None
    customers_conceal(user, [ticket], addresses=addresses)
    return ticket


@extend_schema_view(
    get=extend_schema(summary="A ticket", parameters=[REFERENCE_PARAMETER]),
    patch=extend_schema(
        summary="Change a ticket (agents)",
        description=(
            "Only the fields sent are changed. With If-Match (the ETag of the ticket's detail) the change "
            "is made only if the ticket is still at that version, else 412 with the current values."
        ),
        parameters=[REFERENCE_PARAMETER, IF_MATCH_PARAMETER],
        request=TicketUpdateSerializer,
        responses={200: TicketDetailSerializer, 412: TicketVersionMismatchSerializer},
    ),
)
class TicketDetailView(generics.GenericAPIView):
    serializer_class = TicketDetailSerializer
    permission_classes = [IsAuthenticated, AgentsChangeTickets]
    filter_backends: list[Any] = []
    lookup_field = "reference"

    def get_object(self) -> Ticket:
        ticket = visible_ticket(self.request.user, self.kwargs["reference"])
        self.check_object_permissions(self.request, ticket)
        return ticket

    def get(self, request: Request, reference: str) -> Response:
        return self._answer(self.get_object())

    def patch(self, request: Request, reference: str) -> Response:
        ticket = self.get_object()
        serializer = TicketUpdateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        user = signed_in_user(request)
        if "is_deleted" in serializer.validated_data and not sees_all_queues(user):
            raise exceptions.PermissionDenied(_("Only managers and admins delete or restore tickets."))
        try:
            ticket_update(
                ticket=ticket,
                actor=Actor.agent(user, source="api"),
                version=if_match_version(request),
                **serializer.validated_data,
            )
        except TicketVersionMismatch as exc:
            return version_mismatch_answer(request, reference, exc, context=self.get_serializer_context())
        return self._answer(visible_ticket(request.user, reference))

    def _answer(self, ticket: Ticket) -> Response:
        response = Response(self.get_serializer(ticket).data)
        response["ETag"] = etag_for(ticket.version)
        return response


def etag_for(version: int) -> str:
    """A ticket's ETag: its version, which every change increments."""
    return f'"{version}"'


def version_mismatch_answer(
    request: Request, reference: str, exc: TicketVersionMismatch, *, context: dict[str, Any]
) -> Response:
    """412 for a write refused by its If-Match: the reason, the current version (also as the
    ETag) and the ticket as the caller may see it now, to decide again from."""
    current = TicketDetailSerializer(visible_ticket(request.user, reference), context=context).data
    response = Response(
        {"detail": exc.message, "version": exc.version, "current": current},
        status=status.HTTP_412_PRECONDITION_FAILED,
    )
    response["ETag"] = etag_for(exc.version)
    return response


def if_match_version(request: Request) -> int | None:
    """The version an If-Match header requires, None without one (or with ``*``).

    A value that is no version of ours (another ETag, garbage) can never
    match, so it is answered as a mismatch: -1.
    """
    raw = (request.headers.get("If-Match") or "").strip()
    if not raw or raw == "*":
        return None
    value = raw.removeprefix("W/").strip().strip('"')
    return int(value) if value.isdigit() and len(value) < 12 else -1


# --- Messages ----------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="Messages of a ticket",
        description="Agents see every message; customers see the public ones.",
        parameters=[REFERENCE_PARAMETER],
        responses=MessageSerializer(many=True),
    ),
    post=extend_schema(
        summary="Write on a ticket",
        description=(
            "Agents send a reply (delivered to the customer) or an internal note, optionally moving the "
            "ticket to a status at the same time. A customer sends only text, added as their message. "
            "With If-Match (the ETag of the ticket's detail) the message is written only if the ticket is "
            "still at that version, else 412 with the current values and nothing written. A new message "
            "answers with the ETag of the ticket it produced. Idempotency-Key is checked first: a repeat "
            "of a request already applied replays it (200, without an ETag: read the ticket for its "
            "current one) whatever its If-Match."
        ),
        parameters=[REFERENCE_PARAMETER, IDEMPOTENCY_PARAMETER, IF_MATCH_PARAMETER],
        request=MessageCreateSerializer,
        responses={201: MessageSerializer, 200: MessageSerializer, 412: TicketVersionMismatchSerializer},
    ),
)
class TicketMessagesView(generics.ListCreateAPIView):
    serializer_class = MessageSerializer
    pagination_class = Pagination
    filter_backends: list[Any] = []
    permission_classes = [IsAuthenticated, AgentOrCustomer]

    def ticket(self) -> Ticket:
        return visible_ticket(self.request.user, self.kwargs["reference"])

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "with_downloads": caller_is_agent(self.request)}

    def get_queryset(self) -> QuerySet[Message]:
        return (
            messages_visible_to(self.request.user, self.ticket())
            .select_related("author_user", "author_customer")
            .prefetch_related("attachments")
            .order_by("created_at", "id")
        )

    def paginate_queryset(self, queryset: QuerySet[Any] | Sequence[Any]) -> Sequence[Any] | None:
        page = super().paginate_queryset(queryset)
        if page is not None:
            customers_conceal(self.request.user, [], messages=page)
        return page

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        ticket = self.ticket()
        try:
            # The key first: a repeat of a request already applied replays, whatever its If-Match.
            with idempotent(request) as idem:
                if idem.replay is not None:
                    message, created = idem.replay, False
                else:
                    external_id = external_id_for(request)
                    if caller_is_agent(request):
                        message, created = self._agent_write(request, ticket, external_id)
                    else:
                        message, created = self._customer_write(request, ticket, external_id)
                    idem.message = message
        except TicketVersionMismatch as exc:
            return version_mismatch_answer(
                request, self.kwargs["reference"], exc, context=self.get_serializer_context()
            )
        # The version this write produced, read under the ticket's lock (the service's ticket);
        # none when a customer's message opened a follow-up ticket instead.
        produced = message.ticket.version if created and message.ticket_id == ticket.pk else None
        message = self.get_queryset().get(pk=message.pk)
        customers_conceal(request.user, [], messages=[message])
        response = Response(
            self.get_serializer(message).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
        if produced is not None:
            response["ETag"] = etag_for(produced)
        return response

    def _agent_write(self, request: Request, ticket: Ticket, external_id: str | None) -> tuple[Message, bool]:
        serializer = MessageCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        agent = signed_in_user(request)
        common = {
            "ticket": ticket,
            "author": agent,
            "text": data["text"],
            "status": data.get("status"),
            "actor": Actor.agent(agent, source="api"),
            "external_id": external_id,
            "version": if_match_version(request),
        }

        def lookup() -> Message | None:
            if external_id is None:
                return None
            return messages_visible_to(agent, ticket).filter(channel=ticket.channel, external_id=external_id).first()

        if data["kind"] == "reply":
            return written_once(
                lambda: ticket_reply_create(
                    **common,
                    quote_history=data["quote_history"],
                    seen_message_id=None if data["force"] else data.get("after_message"),
                ),
                lookup=lookup,
            )
        return written_once(lambda: ticket_note_create(**common), lookup=lookup)

    def _customer_write(self, request: Request, ticket: Ticket, external_id: str | None) -> tuple[Message, bool]:
        customer = caller_customer(request)
        serializer = CustomerMessageCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        inbound = InboundMessage(
            channel="api",
            external_id=external_id or uuid.uuid4().hex,
            sender=sender_of(customer),
            text=serializer.validated_data["text"],
            ticket_reference=ticket.reference,
            reference_trusted=True,
            acknowledge=False,
        )
        version = if_match_version(request)
        try:
            with transaction.atomic():
                if version is not None:
                    ticket_version_require(ticket=ticket, version=version)
                result = inbound_message_receive(inbound=inbound)
        except TicketVersionMismatch:
            # As for agents: a message stored earlier under this key is the answer.
            earlier = (
                messages_visible_to(request.user, ticket).filter(channel="api", external_id=external_id).first()
                if external_id is not None
                else None
            )
            if earlier is None:
                raise
            return earlier, False
        return result.message, not result.duplicate


@extend_schema(
    summary="Send a failed message again (agents)",
    description=(
        "Queues a message whose delivery failed (its `delivery_error` says why) for delivery again. "
        "409 when the message is not failed: queued, sending and sent messages are never sent twice."
    ),
    parameters=[
        REFERENCE_PARAMETER,
        OpenApiParameter("message_id", OpenApiTypes.INT, OpenApiParameter.PATH, description=_("The message's id.")),
    ],
    request=None,
    responses={200: MessageSerializer},
)
class MessageResendView(generics.GenericAPIView):
    serializer_class = MessageSerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list[Any] = []

    def post(self, request: Request, reference: str, message_id: int) -> Response:
        ticket = visible_ticket(request.user, reference)
        if not caller_is_agent(request):
            raise exceptions.PermissionDenied(_("Only agents can send a message again."))
        message = messages_visible_to(request.user, ticket).filter(pk=message_id).select_related("ticket").first()
        if message is None:
            raise exceptions.NotFound()
        message_delivery_retry(message=message, actor=Actor.agent(signed_in_user(request), source="api"))
        message.refresh_from_db()
        customers_conceal(request.user, [], messages=[message])
        context = {**self.get_serializer_context(), "with_downloads": True}
        return Response(MessageSerializer(message, context=context).data)


# --- Customers ---------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="List customers",
        description="Agents see the customers of their queues' tickets; a customer sees their own record.",
        parameters=[OpenApiParameter("search", OpenApiTypes.STR, description=_("Part of a name or an address."))],
    )
)
class CustomerListView(generics.ListAPIView):
    serializer_class = CustomerSerializer
    pagination_class = Pagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Customer]:
        search = (self.request.query_params.get("search") or "").strip()[:200]
        return customer_list(user=self.request.user, search=search)


@extend_schema_view(get=extend_schema(summary="A customer, with their tickets on every channel"))
class CustomerDetailView(generics.GenericAPIView):
    serializer_class = CustomerDetailSerializer
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Customer]:
        return customer_list(user=self.request.user)

    def get(self, request: Request, pk: int) -> Response:
        customer = self.get_queryset().filter(pk=pk).first()
        if customer is None:
            raise exceptions.NotFound()
        tickets = customer_tickets(user=request.user, customer=customer, limit=CUSTOMER_HISTORY_LIMIT)
        context = {**self.get_serializer_context(), "tickets": tickets}
        return Response(CustomerDetailSerializer(customer, context=context).data)
