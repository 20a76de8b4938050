from django.apps import AppConfig


class EmailChannelConfig(AppConfig):
    name = "channels_app.email"
    label = "email_channel"
    verbose_name = "Email channel"

    def ready(self) -> None:
        from servicedesk.tickets import outbound

        from .outbound import deliver_by_email

        # Email carries replies for tickets from email, the web form and the API.
        for channel in ("email", "web", "api"):
            outbound.register(channel, deliver_by_email)
