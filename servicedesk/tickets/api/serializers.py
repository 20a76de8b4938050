"""Shapes of the REST API v1: what a ticket, message and customer look like, and
what a caller may send. Serializers validate and present; the views hand the
validated data to the services, which make every change."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import ReturnList

from servicedesk.accounts.models import User
from servicedesk.accounts.roles import sees_all_queues
from servicedesk.core.api_fields import EmailAddressSerializerField
from servicedesk.core.errors import ApplicationError
from servicedesk.sla.models import TargetHours
from servicedesk.tickets.access import queues_visible_to, ticket_merge_target_for
from servicedesk.tickets.api.permissions import caller_is_customer
from servicedesk.tickets.models import (
    Customer,
    Identity,
    IdentityKind,
    Initiator,
    Message,
    TargetKind,
    TargetState,
    Ticket,
    Topic,
)
from servicedesk.tickets.selectors import customer_list
from servicedesk.tickets.services.followups import pending_until_check
from servicedesk.tickets.statuses import Priority, Status

# --- Reading -----------------------------------------------------------------


class PersonSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class IdentitySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=IdentityKind.choices, read_only=True)
    value = serializers.CharField(read_only=True)


class CustomerWithIdentitiesSerializer(PersonSerializer):
    identities = IdentitySerializer(many=True, read_only=True)


def email_identity(customer: Customer) -> Identity | None:
    """The customer's first usable email address (identities are usually prefetched)."""
    emails = [i for i in customer.identities.all() if i.kind == IdentityKind.EMAIL and not i.is_bouncing]
    emails = emails or [i for i in customer.identities.all() if i.kind == IdentityKind.EMAIL]
    return min(emails, key=lambda i: i.pk) if emails else None


class TicketTargetSerializer(serializers.Serializer):
    """One SLA target of a ticket (docs/metrics.md#sla-outcomes); see docs/sla.md."""

    kind = serializers.ChoiceField(choices=TargetKind.choices, read_only=True)
    state = serializers.ChoiceField(choices=TargetState.choices, read_only=True)
    due_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("When the target falls due; null while paused or fulfilled.")
    )
    warning_at = serializers.DateTimeField(read_only=True, allow_null=True)
    elapsed_seconds = serializers.FloatField(
        read_only=True, help_text=_("Measured time when last evaluated; final once fulfilled.")
    )
    minutes = serializers.IntegerField(read_only=True, help_text=_("The target, in minutes of its hours."))
    hours = serializers.ChoiceField(choices=TargetHours.choices, read_only=True)
    fulfilled_at = serializers.DateTimeField(read_only=True, allow_null=True)
    breached_at = serializers.DateTimeField(read_only=True, allow_null=True)


class TicketSerializer(serializers.Serializer):
    """One ticket as listed; every related row comes from ``selectors.ticket_list``.

    The desk's own working data (tags and the SLA policy, due instant and
    targets) is for agents: a customer's token gets the ticket without those
    fields.
    """

    AGENT_ONLY = ("tags", "is_spam", "is_deleted", "sla_policy", "sla_due_at", "sla_targets", "pending_until")

    reference = serializers.CharField(read_only=True)
    subject = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    priority = serializers.ChoiceField(choices=Priority.choices, read_only=True)
    channel = serializers.CharField(read_only=True)
    initiator = serializers.ChoiceField(choices=Initiator.choices, read_only=True)
    queue = serializers.CharField(source="queue.slug", read_only=True)
    topic = serializers.CharField(source="topic.slug", read_only=True, allow_null=True)
    assignee = PersonSerializer(read_only=True, allow_null=True)
    customer = PersonSerializer(read_only=True)
    tags = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    first_reply_at = serializers.DateTimeField(read_only=True, allow_null=True)
    solved_at = serializers.DateTimeField(read_only=True, allow_null=True)
    sla_policy = serializers.CharField(source="sla_policy.slug", read_only=True, allow_null=True)
    sla_due_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text=_("The earliest due instant among targets whose clock runs, overdue ones included."),
    )
    sla_targets = TicketTargetSerializer(many=True, read_only=True)
    pending_until = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text=_("A pending ticket reopens by itself at this instant (docs/followups.md); null otherwise."),
    )
    is_spam = serializers.BooleanField(read_only=True)
    is_deleted = serializers.BooleanField(read_only=True)
    merged_into = serializers.SerializerMethodField()
    version = serializers.IntegerField(
        read_only=True, help_text=_("Incremented by every change; the ETag of the ticket, for If-Match.")
    )
    url = serializers.SerializerMethodField()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and caller_is_customer(request):
            for name in self.AGENT_ONLY:
                fields.pop(name)
        return fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, ticket: Ticket) -> list[str]:
        return [tag.name for tag in ticket.tags.all()]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_merged_into(self, ticket: Ticket) -> str | None:
        """The reference of the ticket this one was merged into, if the caller may see it."""
        request = self.context.get("request")
        if not ticket.merged_into_id or request is None:
            return None
        target = ticket_merge_target_for(request.user, ticket)
        return target.reference if target is not None else None

    @extend_schema_field(serializers.URLField())
    def get_url(self, ticket: Ticket) -> str:
        return self._absolute("tickets_api:ticket-detail", ticket)

    def _absolute(self, name: str, ticket: Ticket) -> str:
        path = reverse(name, kwargs={"reference": ticket.reference})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else settings.SITE_URL + path


class SatisfactionSerializer(serializers.Serializer):
    """The ticket's latest rating (docs/metrics.md#csat): from a survey, or imported."""

    score = serializers.IntegerField(read_only=True, min_value=1, max_value=5)
    comment = serializers.CharField(read_only=True)
    at = serializers.DateTimeField(read_only=True)


class TicketDetailSerializer(TicketSerializer):
    customer = CustomerWithIdentitiesSerializer(read_only=True)
    messages_url = serializers.SerializerMethodField()
    satisfaction = serializers.SerializerMethodField()

    @extend_schema_field(SatisfactionSerializer(allow_null=True))
    def get_satisfaction(self, ticket: Ticket) -> dict[str, Any] | None:
        from servicedesk.tickets.services.surveys import ticket_satisfaction

        rating = ticket_satisfaction(ticket)
        return dict(SatisfactionSerializer(rating).data) if rating is not None else None

    @extend_schema_field(serializers.URLField())
    def get_messages_url(self, ticket: Ticket) -> str:
        return self._absolute("tickets_api:ticket-messages", ticket)


class TicketVersionMismatchSerializer(serializers.Serializer):
    """The 412 answer to an If-Match that is not the ticket's current version: nothing was written."""

    detail = serializers.CharField(read_only=True)
    version = serializers.IntegerField(read_only=True)
    current = TicketDetailSerializer(read_only=True)


class AuthorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=[("customer", _("Customer")), ("agent", _("Agent")), ("system", _("System"))], read_only=True
    )
    id = serializers.IntegerField(read_only=True, allow_null=True)
    name = serializers.CharField(read_only=True)


class AttachmentSerializer(serializers.Serializer):
    filename = serializers.CharField(read_only=True)
    content_type = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True)
    url = serializers.URLField(read_only=True, required=False, help_text=_("Download address; agents only."))


class DroppedAttachmentSerializer(serializers.Serializer):
    filename = serializers.CharField(read_only=True)
    reason = serializers.ChoiceField(choices=["type", "size", "count"], read_only=True)
    message = serializers.CharField(
        read_only=True, help_text=_("Why the file was not kept, in the request's language.")
    )


class MessageSerializer(serializers.Serializer):
    """A message; ``context["with_downloads"]`` adds attachment download links (agents)."""

    id = serializers.IntegerField(read_only=True)
    kind = serializers.CharField(read_only=True)
    channel = serializers.CharField(read_only=True)
    author = serializers.SerializerMethodField()
    text = serializers.CharField(read_only=True)
    html = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    delivery_status = serializers.CharField(read_only=True)
    delivery_error = serializers.CharField(read_only=True)
    attachments = serializers.SerializerMethodField()
    # Files the message came with that were not kept (mail), and why.
    dropped_attachments = serializers.SerializerMethodField()

    @extend_schema_field(DroppedAttachmentSerializer(many=True))
    def get_dropped_attachments(self, message: Message) -> list[dict[str, Any]]:
        return [{"filename": d.filename, "reason": d.reason, "message": d.message()} for d in message.dropped]

    @extend_schema_field(AuthorSerializer)
    def get_author(self, message: Message) -> dict[str, Any]:
        if message.author_user_id:
            return {"type": "agent", "id": message.author_user_id, "name": str(message.author_user)}
        if message.author_customer_id:
            return {"type": "customer", "id": message.author_customer_id, "name": str(message.author_customer)}
        return {"type": "system", "id": None, "name": message.author_name}

    @extend_schema_field(AttachmentSerializer(many=True))
    def get_attachments(self, message: Message) -> list[dict[str, Any]]:
        request = self.context.get("request")
        with_downloads = self.context.get("with_downloads", False)
        items = []
        for attachment in message.attachments.all():
            item: dict[str, Any] = {
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "size": attachment.size,
            }
            if with_downloads:
                path = reverse("desk:attachment", kwargs={"key": attachment.key})
                item["url"] = request.build_absolute_uri(path) if request is not None else settings.SITE_URL + path
            items.append(item)
        return items


class OrganizationSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    tier = serializers.CharField(read_only=True)


class CustomerTicketSerializer(serializers.Serializer):
    reference = serializers.CharField(read_only=True)
    subject = serializers.CharField(read_only=True)
    channel = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class CustomerSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    organization = OrganizationSerializer(read_only=True, allow_null=True)
    identities = IdentitySerializer(many=True, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    url = serializers.SerializerMethodField()

    @extend_schema_field(serializers.URLField())
    def get_url(self, customer: Customer) -> str:
        path = reverse("tickets_api:customer-detail", kwargs={"pk": customer.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else settings.SITE_URL + path


class CustomerDetailSerializer(CustomerSerializer):
    """``context["tickets"]``: the customer's tickets the caller may see, newest first."""

    tickets = serializers.SerializerMethodField()

    @extend_schema_field(CustomerTicketSerializer(many=True))
    def get_tickets(self, customer: Customer) -> ReturnList:
        # With many=True the constructor returns a ListSerializer.
        tickets = cast(serializers.ListSerializer, CustomerTicketSerializer(self.context.get("tickets", []), many=True))
        return tickets.data


# --- Writing -----------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class VisibleQueueField(serializers.SlugRelatedField):
    """A queue slug among the queues the caller works in."""

    default_error_messages = {
        "does_not_exist": _("Unknown queue, or not one of your queues: {value}."),
        "invalid": _("Give the queue's slug."),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", **kwargs)

    def get_queryset(self) -> Any:
        return queues_visible_to(self.context["request"].user)


@extend_schema_field(OpenApiTypes.INT)
class VisibleCustomerField(serializers.PrimaryKeyRelatedField):
    default_error_messages = {
        "does_not_exist": _("Unknown customer: {pk_value}."),
        "incorrect_type": _("Give the customer's id."),
    }

    def get_queryset(self) -> Any:
        return customer_list(user=self.context["request"].user)

    def to_internal_value(self, data: Any) -> Any:
        # The database would take 1.5 or true as customer 1, and 2**70 as an error.
        if isinstance(data, str) and data.strip().isdigit():
            data = int(data.strip())
        if isinstance(data, bool) or not isinstance(data, int) or not 1 <= data < 2**63:
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.STR)
class TopicField(serializers.SlugRelatedField):
    default_error_messages = {
        "does_not_exist": _("Unknown topic: {value}."),
        "invalid": _("Give the topic's slug."),
    }

    def __init__(self, *, public_only: bool = False, **kwargs: Any) -> None:
        queryset = Topic.objects.filter(is_public=True) if public_only else Topic.objects.all()
        super().__init__(slug_field="slug", queryset=queryset.select_related("queue"), **kwargs)


class TicketCreateSerializer(serializers.Serializer):
    """An agent opens a ticket, for a customer given by id or by email address."""

    customer = VisibleCustomerField(required=False, help_text=_("Id of an existing customer."))
    customer_email = EmailAddressSerializerField(
        required=False, help_text=_("Email address; a new customer is created when unknown.")
    )
    customer_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    subject = serializers.CharField(max_length=300)
    text = serializers.CharField(help_text=_("The first message."))
    queue = VisibleQueueField(required=False, allow_null=True)
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.NORMAL)
    topic = TopicField(required=False, allow_null=True)
    initiator = serializers.ChoiceField(
        choices=Initiator.choices,
        default=Initiator.INBOUND,
        help_text=_(
            "inbound: the text is the customer's message. "
            "outbound: the agent starts the conversation and the text is sent to the customer."
        ),
    )
    acknowledge = serializers.BooleanField(
        default=False, help_text=_("Inbound only: send the customer the automatic acknowledgement.")
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        customer = attrs.get("customer")
        email = attrs.get("customer_email")
        if customer is None and not email:
            raise serializers.ValidationError({"customer": [_("Give a customer id or a customer_email.")]})
        if customer is not None and email:
            raise serializers.ValidationError(
                {"customer_email": [_("Give either customer or customer_email, not both.")]}
            )
        if customer is not None:
            identity = email_identity(customer)
            if identity is None:
                raise serializers.ValidationError({"customer": [_("This customer has no email address.")]})
            attrs["customer_email"] = identity.value
        attrs["queue"] = self._queue(attrs)
        return attrs

    def _queue(self, attrs: dict[str, Any]) -> Any:
        """The queue the ticket will land in; for agents it must be one of theirs."""
        user = self.context["request"].user
        queue = attrs.get("queue")
        if queue is not None or sees_all_queues(user):
            return queue
        visible = queues_visible_to(user)
        topic = attrs.get("topic")
        if topic is not None and topic.queue_id:
            queue = visible.filter(pk=topic.queue_id).first()
        else:
            queue = visible.filter(slug=settings.SERVICEDESK["DEFAULT_QUEUE"]).first()
        if queue is None:
            raise serializers.ValidationError({"queue": [_("Choose one of your queues for this ticket.")]})
        return queue


class CustomerTicketCreateSerializer(serializers.Serializer):
    """A signed-in customer opens a ticket for themselves."""

    subject = serializers.CharField(max_length=300)
    text = serializers.CharField()
    topic = TopicField(public_only=True, required=False, allow_null=True)


class TicketUpdateSerializer(serializers.Serializer):
    """Fields an agent may change; only the fields sent are changed."""

    status = serializers.ChoiceField(choices=Status.choices, required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        error_messages={"does_not_exist": _("Unknown agent: {pk_value}."), "incorrect_type": _("Give the agent's id.")},
    )
    queue = VisibleQueueField(required=False)
    topic = TopicField(required=False, allow_null=True)
    subject = serializers.CharField(required=False, max_length=300)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=50)
    is_spam = serializers.BooleanField(
        required=False, help_text=_("Spam leaves the queues' lists, routing, the SLA and the reports.")
    )
    is_deleted = serializers.BooleanField(
        required=False, help_text=_("Managers and admins only: delete (hide) the ticket, or restore it.")
    )
    pending_until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=_(
            "With status pending (sent along, or the ticket's): the ISO 8601 instant, in the future, at which "
            "the ticket reopens by itself. null clears it."
        ),
    )

    def validate_pending_until(self, value: datetime | None) -> datetime | None:
        if value is not None:
            try:
                pending_until_check(until=value, at=timezone.now())
            except ApplicationError as exc:
                raise serializers.ValidationError(exc.message) from None
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        status = attrs.get("status")
        if attrs.get("pending_until") is not None and status is not None and status != Status.PENDING:
            raise serializers.ValidationError(
                {"pending_until": [_("Only a pending ticket waits until a time: set the status to pending too.")]}
            )
        return attrs


class MessageCreateSerializer(serializers.Serializer):
    """An agent writes on a ticket: a reply (sent to the customer) or an internal note."""

    kind = serializers.ChoiceField(choices=[("reply", _("Reply")), ("note", _("Internal note"))], default="reply")
    text = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Status.choices, required=False, help_text=_("Move the ticket to this status at the same time.")
    )
    quote_history = serializers.BooleanField(
        default=False, help_text=_("For a reply: quote the earlier conversation below it.")
    )
    after_message = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text=_(
            "For a reply: the newest customer message the reply answers (0: none). If the customer wrote "
            "since, the reply is not sent: 409 with the newer messages, unless force is true."
        ),
    )
    force = serializers.BooleanField(default=False, help_text=_("Send the reply even if the customer wrote since."))


class CustomerMessageCreateSerializer(serializers.Serializer):
    text = serializers.CharField()
