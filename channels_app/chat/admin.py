from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import CannedReply, ChatConversation, ChatWidget


@admin.register(ChatWidget)
class ChatWidgetAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "queue", "is_active", "hours", "max_queue_length"]
    list_filter = ["is_active"]
    fieldsets = [
        (None, {"fields": ["name", "key", "is_active", "queue"]}),
        (_("Sites"), {"fields": ["allowed_origins", "secret"]}),
        (_("Look"), {"fields": ["greeting", "greeting_zh_hans", "colour", "text_colour"]}),
        (_("Pre-chat form"), {"fields": ["name_required", "email_required"]}),
        (
            "Availability",
            {
                "fields": [
                    "hours",
                    "max_queue_length",
                    "max_wait_seconds",
                    "offer_timeout_seconds",
                    "abandon_grace_seconds",
                    "idle_timeout_seconds",
                ]
            },
        ),
    ]


@admin.register(ChatConversation)
class ChatConversationAdmin(admin.ModelAdmin):
    list_display = ["pk", "widget", "queue", "status", "agent", "requested_at", "ended_at"]
    list_filter = ["status", "queue"]
    list_select_related = ["widget", "queue", "agent"]
    raw_id_fields = ["ticket", "customer", "session", "agent", "offered_to", "claim_confirmed_by"]
    readonly_fields = ["token_hash", "last_seq"]
    ordering = ["-requested_at"]


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):
    list_display = ["title", "queue", "position"]
    list_filter = ["queue"]
    list_editable = ["position"]
    search_fields = ["title", "text"]
    ordering = ["queue", "position", "title"]
