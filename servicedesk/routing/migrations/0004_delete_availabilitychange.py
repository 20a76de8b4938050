"""The availability history is ``tickets.AgentPresence`` now (0003 copied it)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0003_availability_changes_to_presence"),
    ]

    operations = [
        migrations.DeleteModel(
            name="AvailabilityChange",
        ),
    ]
