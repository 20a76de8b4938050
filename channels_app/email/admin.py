"""Admin: inbound mail (read-only, raw download, reprocess and discard) and IMAP accounts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from channels_app.email.models import InboundEmail, MailAccount
from channels_app.email.services import quarantine_discard, quarantine_reprocess
from servicedesk.core.errors import ApplicationError
from servicedesk.tickets.events import Actor


@admin.register(InboundEmail)
class InboundEmailAdmin(admin.ModelAdmin):
    list_display = ["received_at", "status", "quarantine_reason", "sender", "subject", "size", "source"]
    list_filter = ["status", "source"]
    search_fields = ["rfc_message_id", "sender", "subject", "raw_sha256"]
    date_hierarchy = "received_at"
    actions = ["download_raw", "reprocess", "discard"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Download the raw message"))
    def download_raw(self, request: HttpRequest, queryset: QuerySet[InboundEmail]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one message to download."), messages.ERROR)
            return None
        mail = queryset.get()
        response = HttpResponse(mail.raw_bytes(), content_type="message/rfc822")
        response["Content-Disposition"] = f'attachment; filename="message-{mail.pk}.eml"'
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @admin.action(description=_("Reprocess quarantined messages"))
    def reprocess(self, request: HttpRequest, queryset: QuerySet[InboundEmail]) -> None:
        done = 0
        for mail in queryset.filter(status=InboundEmail.Status.QUARANTINED):
            if quarantine_reprocess(inbound_email=mail).outcome != "quarantined":
                done += 1
        self.message_user(request, _("%(count)d message(s) processed.") % {"count": done})

    @admin.action(description=_("Discard quarantined messages"))
    def discard(self, request: HttpRequest, queryset: QuerySet[InboundEmail]) -> None:
        done = 0
        for mail in queryset:
            try:
                quarantine_discard(inbound_email=mail, actor=Actor.agent(request.user, source="admin"))  # type: ignore[arg-type]
            except ApplicationError:
                continue
            done += 1
        self.message_user(request, _("%(count)d message(s) discarded.") % {"count": done})


class MailAccountForm(forms.ModelForm):
    password = forms.CharField(
        label=_("Password"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "Stored encrypted; a password environment variable, when set, is used instead. "
            "Leave blank to keep the current one."
        ),
    )

    class Meta:
        model = MailAccount
        fields = [
            "name",
            "host",
            "port",
            "security",
            "username",
            "password_env",
            "folder",
            "processed_folder",
            "queue",
            "is_active",
        ]

    def save(self, commit: bool = True) -> MailAccount:
        account = super().save(commit=False)
        if self.cleaned_data.get("password"):
            account.password_set(self.cleaned_data["password"])
        if commit:
            account.save()
        return account

    field_order = [
        "name",
        "host",
        "port",
        "security",
        "username",
        "password_env",
        "password",
        "folder",
        "processed_folder",
        "queue",
        "is_active",
    ]


@admin.register(MailAccount)
class MailAccountAdmin(admin.ModelAdmin):
    form = MailAccountForm
    list_display = ["name", "host", "port", "security", "username", "folder", "queue", "is_active", "last_polled_at"]
    list_filter = ["is_active", "security"]
    readonly_fields = ["last_polled_at", "last_error"]
