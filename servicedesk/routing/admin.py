"""Routing configuration in the Django admin: skills, agent profiles, queue modes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from servicedesk.routing.models import AgentProfile, Assignment, AvailabilityChange, QueueRouting, Skill, Trigger
from servicedesk.routing.services import drain_enqueue, pull_enqueue


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ("kind", "value")
    list_filter = ("kind",)
    search_fields = ("value",)


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "availability", "capacity", "working_hours", "last_assigned_at")
    list_filter = ("availability",)
    list_select_related = ("user", "working_hours")
    search_fields = ("user__username", "user__display_name", "user__email")
    filter_horizontal = ("skills",)
    raw_id_fields = ("user",)
    readonly_fields = ("round_robin_position", "last_assigned_at", "availability_changed_at")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # A higher capacity or a new skill may let the agent take waiting tickets.
        super().save_related(request, form, formsets, change)
        agent_id = form.instance.user_id
        transaction.on_commit(lambda: pull_enqueue(agent_id=agent_id, trigger=Trigger.CAPACITY_FREED))


@admin.register(QueueRouting)
class QueueRoutingAdmin(admin.ModelAdmin):
    list_display = ("queue", "mode", "match_language", "match_topic", "match_channel")
    list_filter = ("mode",)
    list_select_related = ("queue",)
    filter_horizontal = ("required_skills",)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        queue_id = form.instance.queue_id
        transaction.on_commit(lambda: drain_enqueue(queue_id=queue_id))


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(_ReadOnly):
    list_display = ("at", "ticket", "agent", "queue", "mode", "trigger", "load_before")
    list_filter = ("mode", "trigger", "queue")
    list_select_related = ("ticket", "agent", "queue")
    date_hierarchy = "at"


@admin.register(AvailabilityChange)
class AvailabilityChangeAdmin(_ReadOnly):
    list_display = ("at", "agent", "before", "after")
    list_filter = ("after",)
    list_select_related = ("agent",)
