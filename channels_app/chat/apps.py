from django.apps import AppConfig


class ChatChannelConfig(AppConfig):
    name = "channels_app.chat"
    label = "chat_channel"
    verbose_name = "Chat channel"

    def ready(self) -> None:
        from servicedesk.tickets import outbound

        from . import pushes  # noqa: F401  (registers the /ws/desk/ chat frames)
        from .delivery import deliver_chat_reply

        # A reply written on a chat ticket outside a live chat goes by email.
        outbound.register("chat", deliver_chat_reply)
