"""Configuration in the Django admin: queues, topics, organizations, tags.

Tickets, messages and customers are shown read-only here: their changes go
through the services (agent workspace, API), which record TicketEvents.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from servicedesk.tickets.models import (
    AgentPresence,
    Customer,
    Identity,
    Message,
    OperatingCost,
    Organization,
    Queue,
    Session,
    Tag,
    Ticket,
    TicketEvent,
    Topic,
)


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "email_address")
    search_fields = ("slug", "name")
    filter_horizontal = ("members",)


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "name_zh_hans", "is_public", "queue")
    list_filter = ("is_public", "queue")
    search_fields = ("slug", "name", "name_zh_hans")


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "tier", "created_at")
    list_filter = ("tier",)
    search_fields = ("name",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IdentityInline(admin.TabularInline):
    model = Identity
    extra = 0
    fields = ("kind", "value", "is_bouncing", "bouncing_change", "bouncing_changed_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ("name", "organization", "created_at", "merged_into")
    search_fields = ("name", "identities__value")
    list_select_related = ("organization", "merged_into")
    inlines = [IdentityInline]


@admin.register(Ticket)
class TicketAdmin(ReadOnlyAdmin):
    list_display = ("reference", "subject", "status", "priority", "channel", "queue", "assignee", "updated_at")
    list_filter = ("status", "priority", "channel", "queue")
    search_fields = ("reference", "subject", "customer__name")
    list_select_related = ("queue", "assignee")


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("ticket", "kind", "channel", "delivery_status", "created_at")
    list_filter = ("kind", "channel", "delivery_status")
    list_select_related = ("ticket",)


@admin.register(TicketEvent)
class TicketEventAdmin(ReadOnlyAdmin):
    list_display = ("ticket", "kind", "at", "source")
    list_filter = ("kind", "source")
    list_select_related = ("ticket",)


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = (
        "external_id",
        "channel",
        "requested_at",
        "answered_at",
        "abandoned_at",
        "ended_at",
        "agent",
        "ticket",
    )
    list_filter = ("channel",)
    search_fields = ("external_id",)
    list_select_related = ("agent", "ticket")


@admin.register(AgentPresence)
class AgentPresenceAdmin(ReadOnlyAdmin):
    list_display = ("agent", "at", "state")
    list_filter = ("state",)
    list_select_related = ("agent",)


@admin.register(OperatingCost)
class OperatingCostAdmin(ReadOnlyAdmin):
    list_display = ("period_start", "period_end", "amount", "currency")
