"""Webhooks in the Django admin: endpoints (changed through the services) and the delivery log."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from servicedesk.core.errors import ApplicationError
from servicedesk.webhooks.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from servicedesk.webhooks.services import (
    endpoint_url_clean,
    event_types_clean,
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_update,
)


class EndpointForm(forms.ModelForm):
    url = forms.URLField(label=gettext_lazy("URL"), max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label=gettext_lazy("Event types"), choices=EventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types", "is_active", "allow_private_addresses"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name, check in (
            (
                "url",
                lambda: endpoint_url_clean(cleaned["url"], allow_private=cleaned.get("allow_private_addresses", False)),
            ),
            ("event_types", lambda: event_types_clean(cleaned["event_types"])),
        ):
            if name in cleaned:
                try:
                    check()
                except ApplicationError as exc:
                    self.add_error(name, exc.message)
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("url", "description", "is_active", "paused_reason", "failing_since", "created_at")
    list_filter = ("is_active", "paused_reason")
    readonly_fields = ("paused_reason", "paused_at", "failing_since", "created_by", "created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        try:
            if change:
                saved = webhook_endpoint_update(endpoint=obj, actor=request.user, changes=data)  # type: ignore[arg-type]
            else:
                created = webhook_endpoint_create(actor=request.user, **data)  # type: ignore[arg-type]
                saved = created.endpoint
                messages.warning(
                    request,
                    _("The endpoint's signing secret, shown this once: %(secret)s") % {"secret": created.secret},
                )
        except ApplicationError as exc:
            # The form checked the rest; what is left is the admin-only flag (403).
            raise PermissionDenied(exc.message) from exc
        obj.pk = saved.pk


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("number", "at", "status_code", "duration_ms", "response_excerpt", "error", "succeeded", "manual")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("event", "endpoint", "state", "attempts", "last_status_code", "next_attempt_at", "delivered_at")
    list_filter = ("state", "endpoint")
    readonly_fields = (
        "endpoint",
        "event",
        "state",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    )
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=gettext_lazy("Redeliver now"))
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        sent = 0
        for delivery in queryset:
            try:
                webhook_delivery_redeliver(delivery=delivery)
                sent += 1
            except ApplicationError as exc:
                messages.warning(request, f"{delivery}: {exc.message}")
        messages.success(request, _("%(count)d deliveries sent again.") % {"count": sent})


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "created_at", "dispatched_at")
    list_filter = ("type",)
    readonly_fields = ("id", "type", "version", "created_at", "data", "ticket_id", "dedupe_key", "dispatched_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
