from django.apps import AppConfig


class PhoneChannelConfig(AppConfig):
    name = "channels_app.phone"
    label = "phone_channel"
    verbose_name = "Phone channel"

    def ready(self) -> None:
        from channels_app.email.outbound import deliver_by_email
        from servicedesk.tickets import outbound

        from . import lines, pushes  # noqa: F401  (the lines' process cache follows saves in every process; the /ws/desk/ call frames)

        # What is sent to a caller (the acknowledgement of a callback or a
        # voicemail, a reply written on a phone ticket) goes by email.
        outbound.register("phone", deliver_by_email)
