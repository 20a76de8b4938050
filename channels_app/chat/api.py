"""Chat protocol v1 over HTTP (docs/chat-protocol.md), mounted at /api/v1/chat/.

Visitors (no sign-in, from the widget's allowed origins only, throttled per
IP): start a chat, read the widget's settings, and with the visitor token
(header ``X-Visitor-Token``) rate, ask for the transcript, attach a file, or
leave a message when they will not wait. Agents (token or session, the chat
access rule of ``access.py``): list, read, accept, write, transfer, end, wrap up;
and, for the console (``console.py``), the canned replies of their queues and
whom a chat may be handed to.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError, NotFound, PermissionDenied
from servicedesk.core.throttles import FailOpenThrottle
from servicedesk.kb.deflection import chat_key, request_submitted, suggest
from servicedesk.tickets.access import queues_visible_to
from servicedesk.tickets.inbound import InboundAttachment
from servicedesk.tickets.models import Identity, IdentityKind, Ticket, Topic
from servicedesk.tickets.statuses import UNSOLVED_STATUSES, Status
from servicedesk.tickets.tiers import tier_label

from . import services
from .access import chat_get_for, chats_visible_to
from .consumers import origin_allowed
from .models import CannedReply, ChatConversation, ChatStatus, ChatWidget, LineAuthor

log = logging.getLogger(__name__)

CHAT_FILE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")


# ---------------------------------------------------------------- throttles and origins


class ChatStartThrottle(FailOpenThrottle):
    """Chats started per client IP (``SD_API_THROTTLE_CHAT_START``)."""

    scope = "chat_start"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ChatVisitorThrottle(ChatStartThrottle):
    """A visitor's other calls per client IP (``SD_API_THROTTLE_CHAT_VISITOR``)."""

    scope = "chat_visitor"


def _origin(request: HttpRequest) -> str:
    origin = str(request.headers.get("Origin") or "")
    if not origin and request.headers.get("Sec-Fetch-Site") == "same-origin":
        # Browsers send no Origin with a same-origin GET (the desk's own pages reading the
        # widget's settings); they say so in Sec-Fetch-Site, which no page script can set.
        origin = f"{request.scheme}://{request.get_host()}"
    return origin


def _cors(response: HttpResponse, origin: str) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type, X-Visitor-Token"
    response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    return response


def _any_widget_allows(request: HttpRequest, origin: str) -> bool:
    own_host = request.get_host()
    return any(
        origin_allowed(widget, origin, own_host=own_host) for widget in ChatWidget.objects.filter(is_active=True)
    )


class VisitorView(APIView):
    """Base of the visitor's endpoints: no credentials, no cookies, the Origin checked, CORS answered."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = [ChatVisitorThrottle]

    def get_throttles(self) -> list[Any]:
        # A preflight is the browser asking, not the visitor's call: it does not count.
        return [] if self.request.method == "OPTIONS" else super().get_throttles()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # A page of an origin some widget allows can read every answer, refusals and 429s included.
        origin = _origin(request)
        if origin and _any_widget_allows(request, origin):
            self.allowed_origin = origin
        super().initial(request, *args, **kwargs)

    def options(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        origin = _origin(request)
        if not origin or not _any_widget_allows(request, origin):
            log.warning("Refused a chat preflight from origin %s", origin[:200] or "none")
            return HttpResponse(status=403)
        return _cors(HttpResponse(status=204), origin)

    def origin_check(self, request: Request, widget: ChatWidget) -> None:
        origin = _origin(request)
        if not origin_allowed(widget, origin, own_host=request.get_host()):
            log.warning("Refused a chat request to widget %s from origin %s", widget.key, origin[:200] or "none")
            raise PermissionDenied(_("This site may not use the chat."))
        self.allowed_origin = origin

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            # Every refusal of a visitor's call, with its reason (the body names the fields).
            detail = response.data if isinstance(getattr(response, "data", None), dict) else {}
            log.info(
                "Chat visitor call %s %s refused %s: %s",
                request.method,
                request.path,
                response.status_code,
                str(detail)[:300],
            )
        origin = getattr(self, "allowed_origin", "")
        if origin:
            _cors(response, origin)
        return response

    def visitor_conversation(self, request: Request, pk: int) -> ChatConversation:
        token = str(request.headers.get("X-Visitor-Token") or "")
        conversation = services.conversation_for_token(token)
        if conversation.pk != int(pk):
            log.warning("Refused a visitor token for chat %s on chat %s", conversation.pk, pk)
            raise NotFound(_("Unknown or expired chat."))
        self.origin_check(request, conversation.widget)
        return conversation


# The name of the desk's own widget until an administrator names it (the admin lists it so).
DEFAULT_WIDGET_NAME = "Chat"


def _widget_name(widget: ChatWidget) -> str:
    """The title the widget shows; empty for the desk's own widget under its made-up name,
    so the page shows its own title in the visitor's language."""
    return "" if widget.key == "default" and widget.name == DEFAULT_WIDGET_NAME else widget.name


def _widget(key: str) -> ChatWidget:
    widget = ChatWidget.objects.select_related("queue").filter(key=key or "default").first()
    if widget is None and (key or "default") == "default":
        # The desk's own widget until an administrator sets one up: its own pages only, the default queue.
        from servicedesk.tickets.services.tickets import queue_default

        widget, _created = ChatWidget.objects.get_or_create(
            key="default", defaults={"name": DEFAULT_WIDGET_NAME, "queue": queue_default()}
        )
    if widget is None or not widget.is_active:
        raise NotFound(_("No such chat widget."))
    return widget


# ---------------------------------------------------------------- visitors


class WidgetView(VisitorView):
    """The widget's settings for the pre-chat form, and whether agents can chat now."""

    @extend_schema(responses=None)
    def get(self, request: Request, key: str) -> Response:
        widget = _widget(key)
        self.origin_check(request, widget)
        reason = services.offline_reason(widget, timezone.now())
        language = translation.get_language() or ""
        zh = language.lower().startswith("zh")
        topics = [
            {"slug": t.slug, "name": (t.name_zh_hans or t.name) if zh else t.name}
            for t in Topic.objects.filter(is_public=True).order_by("name")
        ]
        return Response(
            {
                "key": widget.key,
                "name": _widget_name(widget),
                "greeting": (widget.greeting_zh_hans or widget.greeting) if zh else widget.greeting,
                "colour": widget.colour,
                "text_colour": widget.text_colour,
                "name_required": widget.name_required,
                "email_required": widget.email_required or bool(reason),
                "online": not reason,
                "offline_reason": reason,
                "max_wait_seconds": widget.max_wait_seconds,
                "topics": topics,
                "text_max": services.TEXT_MAX,
                "file_types": list(CHAT_FILE_TYPES),
            }
        )


class SuggestionsView(VisitorView):
    """The best three knowledge-base articles for the visitor's first message, while they type it.

    ``visitor_key``: the widget's key for the visitor's browser, under which
    what was shown, opened and sent counts for the deflection rate
    (servicedesk/kb/deflection.py).
    """

    @extend_schema(responses=None)
    def get(self, request: Request, key: str) -> Response:
        widget = _widget(key)
        self.origin_check(request, widget)
        query = str(request.query_params.get("q") or "").strip()
        if len(query) > 200:
            return Response({"q": [_("At most %(n)d characters.") % {"n": 200}]}, status=status.HTTP_400_BAD_REQUEST)
        if len(query) < 3:
            return Response({"articles": []})
        deflection = chat_key(str(request.query_params.get("visitor_key") or "")) or ""
        language = "zh-hans" if (translation.get_language() or "").startswith("zh") else "en"
        hits = suggest(user=None, key=deflection, query=query, language=language, source="chat")
        base = settings.SITE_URL
        articles = []
        for hit in hits:
            url = f"{base}/help/kb/articles/{hit.article.pk}/"
            articles.append({"title": hit.article.title, "url": f"{url}?ds={deflection}" if deflection else url})
        return Response({"articles": articles})


class StartSerializer(serializers.Serializer):
    widget = serializers.SlugField(required=False, default="default")
    name = serializers.CharField(required=False, allow_blank=True, max_length=services.NAME_MAX, default="")
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254, default="")
    topic = serializers.SlugField(required=False, allow_blank=True, default="")
    text = serializers.CharField(max_length=services.TEXT_MAX, trim_whitespace=True)
    client_id = serializers.UUIDField()
    language = serializers.CharField(required=False, allow_blank=True, max_length=10, default="")
    visitor = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    identity = serializers.CharField(required=False, allow_blank=True, max_length=254, default="")
    identity_hmac = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
    # The widget's key for the visitor's browser when it showed suggestions (the deflection rate).
    visitor_key = serializers.CharField(required=False, allow_blank=True, max_length=80, default="")


class StartView(VisitorView):
    """Start a chat: 201 with the visitor token, status ``waiting`` or ``offline``."""

    throttle_classes = [ChatStartThrottle]

    @extend_schema(request=StartSerializer, responses=None)
    def post(self, request: Request) -> Response:
        widget_key = request.data.get("widget") if isinstance(request.data, dict) else None
        widget = _widget(str(widget_key or "default"))
        self.origin_check(request, widget)
        serializer = StartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        language = data["language"] or translation.get_language() or ""
        started = services.chat_start(
            services.ChatStart(
                widget=widget,
                name=data["name"],
                email=data["email"],
                topic=data["topic"],
                text=data["text"],
                client_id=data["client_id"],
                language=language,
                origin=self.allowed_origin,
                previous_token=data["visitor"],
                identity=data["identity"],
                identity_hmac=data["identity_hmac"],
            )
        )
        conversation = started.conversation
        deflection = chat_key(data["visitor_key"])
        if deflection:
            request_submitted(key=deflection, source="chat")
        return Response(
            {
                "id": conversation.pk,
                "visitor_token": started.token,
                "status": conversation.status,
                "ticket": conversation.ticket.reference,
            },
            status=status.HTTP_201_CREATED,
        )


class RatingSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=services.TEXT_MAX, default="")


class RatingView(VisitorView):
    @extend_schema(request=RatingSerializer, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.visitor_conversation(request, pk)
        serializer = RatingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rating = services.chat_rate(conversation_id=conversation.pk, **serializer.validated_data)
        return Response({"score": rating.score, "comment": rating.comment})


class TranscriptSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254, default="")


class TranscriptView(VisitorView):
    """Email me the transcript: sent to the address given with the chat (or given here)."""

    @extend_schema(request=TranscriptSerializer, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.visitor_conversation(request, pk)
        serializer = TranscriptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        from .transcripts import transcript_send

        address = transcript_send(conversation=conversation, email=serializer.validated_data["email"])
        return Response({"sent_to": address}, status=status.HTTP_202_ACCEPTED)


class LeaveSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    text = serializers.CharField(required=False, allow_blank=True, max_length=services.TEXT_MAX, default="")


class LeaveView(VisitorView):
    """A waiting visitor leaves a message instead of waiting longer (the offline form)."""

    @extend_schema(request=LeaveSerializer, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.visitor_conversation(request, pk)
        serializer = LeaveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = services.chat_leave_message(conversation_id=conversation.pk, **serializer.validated_data)
        return Response({"status": conversation.status})


class VisitorFileView(VisitorView):
    """An image or PDF from the visitor: stored through the intake's attachment checks as a message."""

    @extend_schema(request=None, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.visitor_conversation(request, pk)
        upload = request.FILES.get("file")
        if upload is None:
            raise ApplicationError(_("Choose a file."), field="file")
        try:
            client_id = uuid.UUID(str(request.data.get("client_id")))
        except ValueError:
            raise ApplicationError(_("A client_id (a UUID) is required."), field="client_id") from None
        content = upload.read()
        attachment = InboundAttachment(
            filename=upload.name or "file", content_type=upload.content_type or "", content=content
        )
        from servicedesk.tickets.services.attachments import attachments_check

        checked = attachments_check([attachment], field="file")
        if checked[0].content_type not in CHAT_FILE_TYPES:
            raise ApplicationError(_("Only images and PDF files can be sent in a chat."), field="file")
        line, _new = services.chat_visitor_message(
            conversation_id=conversation.pk,
            client_id=client_id,
            text=str(request.data.get("text") or ""),
            attachments=tuple(checked),
        )
        return Response({"seq": line.seq}, status=status.HTTP_201_CREATED)


# ---------------------------------------------------------------- agents


class IsAgent(BasePermission):
    message = gettext_lazy("Only agents work chats.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and is_agent(request.user))


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def conversation_body(conversation: ChatConversation, *, now: Any = None) -> dict[str, Any]:
    now = now or timezone.now()
    session = conversation.session
    customer = conversation.customer
    organization = customer.organization
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "queue": {"id": conversation.queue_id, "name": conversation.queue.name},
        "ticket": conversation.ticket.reference,
        "agent": {"id": conversation.agent_id, "name": services.agent_display_name(conversation.agent)}
        if conversation.agent_id
        else None,
        "offered_to_me": False,
        "offer_expires_at": conversation.offer_expires_at,
        "requested_at": conversation.requested_at,
        "answered_at": session.answered_at if session is not None else None,
        "ended_at": conversation.ended_at,
        "wrapped_up_at": conversation.wrapped_up_at,
        "waited_seconds": int(
            (
                (session.answered_at if session and session.answered_at else now) - conversation.requested_at
            ).total_seconds()
        ),
        "last_seq": conversation.last_seq,
        "visitor": {
            "name": conversation.claimed_name or customer.name,
            "email": conversation.claimed_email,
            "verified": bool(conversation.verified_identity) or conversation.claim_confirmed_by_id is not None,
            "verified_identity": conversation.verified_identity,
            "connected": conversation.visitor_left_at is None,
            "language": conversation.language,
        },
        "customer": {
            "id": customer.pk,
            "name": customer.name,
            "tier": organization.tier if organization is not None else "standard",
            "tier_label": tier_label(organization.tier if organization is not None else "standard"),
            "organization": organization.name if organization is not None else "",
        },
    }


class AgentConversationsView(APIView):
    """Waiting and active chats of the caller's queues, and their own ended chats awaiting wrap-up."""

    permission_classes = [IsAgent]

    @extend_schema(responses=None)
    def get(self, request: Request) -> Response:
        user = _user(request)
        rows = (
            chats_visible_to(user)
            .filter(
                Q(status__in=[ChatStatus.WAITING, ChatStatus.ACTIVE])
                | Q(status=ChatStatus.ENDED, agent=user, wrapped_up_at__isnull=True)
            )
            .select_related("queue", "ticket", "agent", "customer__organization", "session")
            .order_by("requested_at", "pk")[:500]
        )
        now = timezone.now()
        bodies = []
        for conversation in rows:
            body = conversation_body(conversation, now=now)
            body["offered_to_me"] = conversation.offered_to_id == user.pk
            bodies.append(body)
        return Response({"results": bodies, "capacity": services.chat_capacity_of(user)})


def _customer_panel(conversation: ChatConversation, user: User) -> dict[str, Any]:
    """Identity (verified or not), tier, history on every channel, open tickets; and any
    customer who owns the address the visitor gave, marked as an unverified match."""
    from servicedesk.tickets.access import customers_visible_to, tickets_visible_to

    customer = conversation.customer
    visible = tickets_visible_to(user).filter(customer=customer)
    history = [
        {
            "reference": t["reference"],
            "subject": t["subject"],
            "channel": t["channel"],
            "status": t["status"],
            "created_at": t["created_at"],
        }
        for t in visible.order_by("-created_at").values("reference", "subject", "channel", "status", "created_at")[:20]
    ]
    identities = list(customer.identities.order_by("kind", "value").values("kind", "value"))
    match = None
    if conversation.claimed_email and conversation.claim_confirmed_by_id is None:
        # Only a customer the agent may see (the access rule for customers): another queue's is not named.
        owner = (
            Identity.objects.filter(kind=IdentityKind.EMAIL, value=conversation.claimed_email.lower())
            .exclude(customer=customer)
            .filter(customer__in=customers_visible_to(user))
            .select_related("customer")
            .first()
        )
        if owner is not None:
            shown = tickets_visible_to(user).filter(customer=owner.customer)
            match = {
                "customer": owner.customer_id,
                "name": owner.customer.name,
                "open_tickets": shown.filter(status__in=UNSOLVED_STATUSES).count(),
                "verified": False,
            }
    return {
        "identities": [i for i in identities if i["kind"] != IdentityKind.CHAT],
        "history": history,
        "open_tickets": [h for h in history if h["status"] in UNSOLVED_STATUSES],
        "claimed_email_owner": match,
        "counts": dict(
            visible.values("channel").annotate(n=Count("id")).values_list("channel", "n")  # type: ignore[arg-type]
        ),
    }


class AgentConversationView(APIView):
    """One chat: its state, the customer panel and its lines after ``?after=`` (default 0)."""

    permission_classes = [IsAgent]

    @extend_schema(responses=None)
    def get(self, request: Request, pk: int) -> Response:
        user = _user(request)
        conversation = chat_get_for(user, pk)
        try:
            after = max(0, int(request.query_params.get("after", 0)))
        except ValueError:
            raise ApplicationError(_("'after' is a sequence number."), field="after") from None
        body = conversation_body(conversation)
        body["offered_to_me"] = conversation.offered_to_id == user.pk
        body["lines"] = [
            services.line_frame(line, conversation, for_visitor=False)
            for line in services.lines_after(conversation, after)
        ]
        body["customer_panel"] = _customer_panel(conversation, user)
        return Response(body)


class AcceptView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(request=None, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        user = _user(request)
        conversation = chat_get_for(user, pk)
        conversation = services.chat_accept(conversation_id=conversation.pk, agent=user)
        return Response({"id": conversation.pk, "status": conversation.status})


class MessageSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=services.TEXT_MAX)
    client_id = serializers.UUIDField(required=False, allow_null=True, default=None)


class AgentMessageView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(request=MessageSerializer, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        user = _user(request)
        conversation = chat_get_for(user, pk)
        serializer = MessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        line, new = services.chat_agent_message(
            conversation_id=conversation.pk,
            agent=user,
            text=serializer.validated_data["text"],
            client_id=serializer.validated_data["client_id"],
        )
        frame = services.line_frame(line, conversation, for_visitor=False)
        return Response(frame, status=status.HTTP_201_CREATED if new else status.HTTP_200_OK)


class TransferSerializer(serializers.Serializer):
    agent = serializers.IntegerField(required=False, allow_null=True, default=None)
    queue = serializers.IntegerField(required=False, allow_null=True, default=None)


class TransferView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(request=TransferSerializer, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        user = _user(request)
        conversation = chat_get_for(user, pk)
        serializer = TransferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent_id, queue_id = serializer.validated_data["agent"], serializer.validated_data["queue"]
        to_agent = to_queue = None
        if agent_id is not None:
            to_agent = User.objects.filter(pk=agent_id, is_active=True).first()
            if to_agent is None or not is_agent(to_agent):
                raise ApplicationError(_("Choose an active agent."), field="agent")
        if queue_id is not None:
            to_queue = queues_visible_to(user).filter(pk=queue_id).first()
            if to_queue is None:
                raise ApplicationError(_("Choose one of your queues."), field="queue")
        conversation = services.chat_transfer(
            conversation_id=conversation.pk, agent=user, to_agent=to_agent, to_queue=to_queue
        )
        return Response({"id": conversation.pk, "status": conversation.status, "agent": conversation.agent_id})


class EndView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(request=None, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        user = _user(request)
        conversation = chat_get_for(user, pk)
        conversation = services.chat_end(conversation_id=conversation.pk, by="agent", agent=user)
        return Response({"id": conversation.pk, "status": conversation.status})


class WrapUpSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices, required=False, allow_blank=True, default="")
    note = serializers.CharField(required=False, allow_blank=True, max_length=20000, default="")


class WrapUpView(APIView):
    permission_classes = [IsAgent]

    @extend_schema(request=WrapUpSerializer, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        user = _user(request)
        conversation = chat_get_for(user, pk)
        serializer = WrapUpSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = services.chat_wrap_up(conversation_id=conversation.pk, agent=user, **serializer.validated_data)
        ticket = Ticket.objects.only("status").get(pk=conversation.ticket_id)
        return Response(
            {"id": conversation.pk, "wrapped_up_at": conversation.wrapped_up_at, "ticket_status": ticket.status}
        )


class TypingView(APIView):
    """The agent is typing: the visitor's widget shows it for a few seconds."""

    permission_classes = [IsAgent]

    @extend_schema(request=None, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        user = _user(request)
        conversation = chat_get_for(user, pk)
        if conversation.status == ChatStatus.ACTIVE and conversation.agent_id == user.pk:
            services.typing_push(conversation, author=LineAuthor.AGENT)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConfirmIdentityView(APIView):
    """The agent confirms the address the visitor gave: the visitor joins the customer who owns it."""

    permission_classes = [IsAgent]

    @extend_schema(request=None, responses=None)
    def post(self, request: Request, pk: int) -> Response:
        user = _user(request)
        conversation = chat_get_for(user, pk)
        conversation = services.claim_confirm(conversation_id=conversation.pk, agent=user)
        return Response({"id": conversation.pk, "verified": True})


# ---------------------------------------------------------------- the console's lists

# Ids are bigint columns: a longer number is no id (and would overflow the query).
_ID_MAX = 2**63


def _query_id(request: Request, name: str) -> int | None:
    raw = str(request.query_params.get(name, "")).strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) >= _ID_MAX:
        raise ApplicationError(_("Give the id, a whole number."), field=name)
    return int(raw)


def canned_replies_visible_to(user: User, *, queue_id: int | None = None) -> list[CannedReply]:
    """The canned replies of the queues ``user`` works in, or of one of them; NotFound for
    a queue they do not work in (the same answer as for no queue)."""
    queues = queues_visible_to(user)
    if queue_id is not None:
        queues = queues.filter(pk=queue_id)
        if not queues.exists():
            raise NotFound(_("No such queue."))
    return list(CannedReply.objects.filter(queue__in=queues).order_by("queue_id", "position", "title", "pk")[:500])


class CannedRepliesView(APIView):
    """``?queue=<id>``: that queue's canned replies (404 for a queue the caller does not work in);
    without it, those of every queue of theirs."""

    permission_classes = [IsAgent]

    @extend_schema(responses=None)
    def get(self, request: Request) -> Response:
        replies = canned_replies_visible_to(_user(request), queue_id=_query_id(request, "queue"))
        return Response(
            {
                "results": [
                    {"id": r.pk, "queue": r.queue_id, "title": r.title, "text": r.text, "position": r.position}
                    for r in replies
                ]
            }
        )


def transfer_targets(conversation: ChatConversation, user: User) -> dict[str, Any]:
    """Whom ``user`` may hand the chat to: the other active agents of its queue (with whether
    routing would offer them a chat now and whether they have room for one) and ``user``'s queues."""
    from .routing import agent_chat_loads, chat_agents_for_queue

    now = timezone.now()
    members = [
        member
        for member in User.objects.filter(is_active=True, pk__in=conversation.queue.members.values("pk"))
        .exclude(pk=user.pk)
        .order_by("display_name", "username")[:200]
        if is_agent(member)
    ]
    available = {profile.user_id for profile in chat_agents_for_queue(queue_id=conversation.queue_id, at=now)}
    loads = agent_chat_loads([member.pk for member in members])
    capacities = {member.pk: services.chat_capacity_of(member) for member in members}
    return {
        "agents": [
            {
                "id": member.pk,
                "name": services.agent_display_name(member),
                "available": member.pk in available,
                "has_room": loads[member.pk] < capacities[member.pk],
            }
            for member in members
        ],
        "queues": [
            {"id": queue.pk, "name": queue.name, "current": queue.pk == conversation.queue_id}
            for queue in queues_visible_to(user).order_by("name")
        ],
    }


class TransferTargetsView(APIView):
    """Where the caller may transfer one chat: agents of its queue, and the caller's queues."""

    permission_classes = [IsAgent]

    @extend_schema(responses=None)
    def get(self, request: Request, pk: int) -> Response:
        user = _user(request)
        return Response(transfer_targets(chat_get_for(user, pk), user))
