from django.apps import AppConfig


def chats_move(*, source_id: int, target_id: int, dry_run: bool) -> list[int]:
    """The chats of a ticket merged into another, moved with it (services/merging.py); their ids."""
    from .models import ChatConversation

    rows = ChatConversation.objects.filter(ticket_id=source_id)
    ids = list(rows.order_by("pk").values_list("pk", flat=True))
    if not dry_run:
        ChatConversation.objects.filter(pk__in=ids).update(ticket_id=target_id)
    return ids


class ChatChannelConfig(AppConfig):
    name = "channels_app.chat"
    label = "chat_channel"
    verbose_name = "Chat channel"

    def ready(self) -> None:
        from servicedesk.tickets.services.merging import merge_mover_register

        merge_mover_register("chats", chats_move)
        from servicedesk.tickets import outbound

        from . import pushes  # noqa: F401  (registers the /ws/desk/ chat frames)
        from .delivery import deliver_chat_reply

        # A reply written on a chat ticket outside a live chat goes by email.
        outbound.register("chat", deliver_chat_reply)
