"""Admin: phone lines (a new secret is written, never shown) and calls (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .models import Call, CallEvent, PhoneLine


class PhoneLineForm(forms.ModelForm):
    new_secret = forms.CharField(
        label=_("New secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Replaces the secret; the previous one is still accepted for 24 hours."),
    )

    class Meta:
        model = PhoneLine
        fields = ["key", "name", "number", "is_active", "queue", "missed_calls", "acknowledge"]

    def save(self, commit: bool = True) -> PhoneLine:
        line: PhoneLine = super().save(commit=False)
        if self.cleaned_data.get("new_secret"):
            line.secret_set(self.cleaned_data["new_secret"])
        if commit:
            line.save()
        return line


@admin.register(PhoneLine)
class PhoneLineAdmin(admin.ModelAdmin):
    form = PhoneLineForm
    list_display = ["name", "key", "number", "queue", "is_active", "missed_calls"]
    readonly_fields = ["secret_previous_until"]


class CallEventInline(admin.TabularInline):
    model = CallEvent
    extra = 0
    fields = ["kind", "at", "received_at", "data"]
    readonly_fields = ["kind", "at", "received_at", "data"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = ["rang_at", "line", "direction", "number", "customer", "agent", "state", "outcome"]
    list_filter = ["line", "direction", "state", "outcome"]
    search_fields = ["call_id", "number"]
    inlines = [CallEventInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
