"""Routing configuration in the Django admin: skills, agent profiles, queue modes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from servicedesk.accounts.roles import is_agent
from servicedesk.routing.models import AgentProfile, Assignment, Availability, QueueRouting, Skill, Trigger
from servicedesk.routing.services import agent_availability_set, drain_enqueue, pull_enqueue


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ("kind", "value")
    list_filter = ("kind",)
    search_fields = ("value",)


class AgentProfileForm(forms.ModelForm):
    class Meta:
        model = AgentProfile
        fields = ["user", "skills", "capacity", "chat_capacity", "availability", "working_hours"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        user = cleaned.get("user")
        if user is not None and "availability" in self.changed_data and not is_agent(user):
            self.add_error("availability", _("Only agents have an availability."))
        return cleaned


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    form = AgentProfileForm
    list_display = ("user", "availability", "capacity", "chat_capacity", "working_hours", "seen_at", "last_assigned_at")
    list_filter = ("availability",)
    list_select_related = ("user", "working_hours")
    search_fields = ("user__username", "user__display_name", "user__email")
    filter_horizontal = ("skills",)
    raw_id_fields = ("user",)
    readonly_fields = (
        "round_robin_position",
        "last_assigned_at",
        "availability_changed_at",
        "seen_at",
        "auto_offline_from",
    )

    def save_model(self, request: HttpRequest, obj: AgentProfile, form: Any, change: bool) -> None:
        # The availability goes through its service, which records the presence
        # history; everything else is saved as the form has it.
        wanted = obj.availability
        obj.availability = form.initial.get("availability", Availability.OFFLINE) if change else Availability.OFFLINE
        super().save_model(request, obj, form, change)
        if wanted != obj.availability:
            profile = agent_availability_set(agent=obj.user, availability=wanted)
            obj.availability = profile.availability
            obj.availability_changed_at = profile.availability_changed_at

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
