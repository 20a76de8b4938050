import django.db.models.deletion
from django.db import migrations, models


def moved_from_backfill(apps, schema_editor):
    """Earlier merges and splits: the ticket each moved message and session was first moved off.

    Their events name what moved (``merged``: ``after`` messages, notes,
    sessions; ``split``: ``after`` message); taken in the order they happened,
    a row keeps the first ticket it left.
    """
    TicketEvent = apps.get_model("tickets", "TicketEvent")
    Message = apps.get_model("tickets", "Message")
    Session = apps.get_model("tickets", "Session")
    events = TicketEvent.objects.filter(kind__in=["merged", "split"]).order_by("at", "id")
    for event in events.values("ticket_id", "kind", "after").iterator():
        after = event["after"] if isinstance(event["after"], dict) else {}
        if event["kind"] == "split":
            messages = [after.get("message")]
            sessions = []
        else:
            messages = list(after.get("messages") or []) + list(after.get("notes") or [])
            sessions = list(after.get("sessions") or [])
        messages = [pk for pk in messages if isinstance(pk, int)]
        sessions = [pk for pk in sessions if isinstance(pk, int)]
        if messages:
            Message.objects.filter(pk__in=messages, moved_from__isnull=True).update(moved_from=event["ticket_id"])
        if sessions:
            Session.objects.filter(pk__in=sessions, moved_from__isnull=True).update(moved_from=event["ticket_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0027_ticket_split_events"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="moved_from",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="tickets.ticket",
            ),
        ),
        migrations.AddField(
            model_name="session",
            name="moved_from",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="tickets.ticket",
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("moved_from__isnull", False)), fields=["moved_from"], name="message_moved_from"
            ),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(
                condition=models.Q(("moved_from__isnull", False)), fields=["moved_from"], name="session_moved_from"
            ),
        ),
        migrations.RunPython(moved_from_backfill, migrations.RunPython.noop),
    ]
