"""Agent profiles get a chat capacity, the last heartbeat of the agent's desk
(``seen_at``) and what presence expiry took them offline from."""

import django.core.validators
from django.db import migrations, models

import servicedesk.routing.models


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="agentprofile",
            name="auto_offline_from",
            field=models.CharField(
                blank=True,
                choices=[("online", "Online"), ("away", "Away"), ("offline", "Offline")],
                default="",
                max_length=10,
                verbose_name="offline by expiry, from",
            ),
        ),
        migrations.AddField(
            model_name="agentprofile",
            name="chat_capacity",
            field=models.PositiveIntegerField(
                default=servicedesk.routing.models.chat_capacity_default,
                help_text="Chats this agent is offered at the same time at most, from 0 (no chats) to 20.",
                validators=[django.core.validators.MaxValueValidator(20)],
                verbose_name="chat capacity",
            ),
        ),
        migrations.AddField(
            model_name="agentprofile",
            name="seen_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="last seen"),
        ),
        migrations.AddIndex(
            model_name="agentprofile",
            index=models.Index(fields=["availability", "seen_at"], name="routing_profile_avail_seen"),
        ),
        migrations.AddConstraint(
            model_name="agentprofile",
            constraint=models.CheckConstraint(
                condition=models.Q(("chat_capacity__lte", 20)),
                name="routing_profile_chat_capacity_max",
                violation_error_message="A chat capacity is at most 20.",
            ),
        ),
    ]
