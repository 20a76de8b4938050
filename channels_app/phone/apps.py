from django.apps import AppConfig


def calls_move(*, source_id: int, target_id: int, dry_run: bool) -> list[int]:
    """The calls of a ticket merged into another, moved with it (services/merging.py); their ids."""
    from .models import Call

    rows = Call.objects.filter(ticket_id=source_id)
    ids = list(rows.order_by("pk").values_list("pk", flat=True))
    if not dry_run:
        Call.objects.filter(pk__in=ids).update(ticket_id=target_id)
    return ids


class PhoneChannelConfig(AppConfig):
    name = "channels_app.phone"
    label = "phone_channel"
    verbose_name = "Phone channel"

    def ready(self) -> None:
        from servicedesk.tickets.services.merging import merge_mover_register

        merge_mover_register("calls", calls_move)
        from channels_app.email.outbound import deliver_by_email
        from servicedesk.tickets import outbound

        from . import lines, pushes  # noqa: F401  (the lines' process cache follows saves in every process; the /ws/desk/ call frames)

        # What is sent to a caller (the acknowledgement of a callback or a
        # voicemail, a reply written on a phone ticket) goes by email.
        outbound.register("phone", deliver_by_email)
