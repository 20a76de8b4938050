# Events are stored under their line and call id as they arrive; the call is
# set when the call's record is folded from them.

import django.db.models.deletion
from django.db import migrations, models


def backfill(apps, schema_editor):
    CallEvent = apps.get_model("phone_channel", "CallEvent")
    for event in CallEvent.objects.select_related("call").iterator():
        event.line_id = event.call.line_id
        event.call_key = event.call.call_id
        event.save(update_fields=["line", "call_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("phone_channel", "0002_call_tickets"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="callevent", name="phone_call_event_once"),
        migrations.AddField(
            model_name="callevent",
            name="line",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="phone_channel.phoneline",
                verbose_name="line",
            ),
        ),
        migrations.AddField(
            model_name="callevent",
            name="call_key",
            field=models.CharField(default="", max_length=250, verbose_name="call id"),
            preserve_default=False,
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="callevent",
            name="line",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="phone_channel.phoneline",
                verbose_name="line",
            ),
        ),
        migrations.AlterField(
            model_name="callevent",
            name="call",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="phone_channel.call",
                verbose_name="call",
            ),
        ),
        migrations.AddConstraint(
            model_name="callevent",
            constraint=models.UniqueConstraint(fields=("line", "call_key", "digest"), name="phone_call_event_once"),
        ),
        migrations.AddIndex(
            model_name="callevent",
            index=models.Index(fields=["line", "call_key"], name="phone_event_call_key"),
        ),
        migrations.AddIndex(
            model_name="callevent",
            index=models.Index(
                condition=models.Q(call__isnull=True), fields=["received_at"], name="phone_event_unfolded"
            ),
        ),
    ]
