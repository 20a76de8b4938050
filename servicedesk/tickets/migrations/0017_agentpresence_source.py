"""Presence rows say who wrote them: ``desk`` (routing, with each change of an agent's
availability) or ``import`` (the history import). Every row stored so far came from the
import, the only writer until presence and routing availability became one history
(docs/architecture.md, "Presence"); new rows default to ``desk``.
"""

from django.db import migrations, models

SOURCE_CHOICES = [("desk", "Desk"), ("import", "Import")]


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0016_email_identities_canonical"),
    ]

    operations = [
        migrations.AddField(
            model_name="agentpresence",
            name="source",
            field=models.CharField(choices=SOURCE_CHOICES, default="import", max_length=10, verbose_name="source"),
        ),
        migrations.AlterField(
            model_name="agentpresence",
            name="source",
            field=models.CharField(choices=SOURCE_CHOICES, default="desk", max_length=10, verbose_name="source"),
        ),
    ]
