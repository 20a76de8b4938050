# Pending until (snooze), followers and mentions (docs/followups.md).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tickets', '0023_merge_suggestions'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='ticket',
            name='pending_until',
            field=models.DateTimeField(blank=True, null=True, verbose_name='pending until'),
        ),
        migrations.AlterField(
            model_name='ticketevent',
            name='kind',
            field=models.CharField(choices=[('created', 'Created'), ('message', 'Message'), ('status', 'Status'), ('priority', 'Priority'), ('assignee', 'Assignee'), ('queue', 'Queue'), ('topic', 'Topic'), ('subject', 'Subject'), ('tags', 'Tags'), ('merged', 'Merged'), ('merged_in', 'Ticket merged in'), ('spam', 'Spam'), ('deleted', 'Deleted'), ('customer', 'Customer'), ('rating', 'Rating'), ('surveyed', 'Satisfaction survey sent'), ('acknowledged', 'Acknowledgement'), ('delivery', 'Delivery'), ('sla_applied', 'SLA target applied'), ('sla_paused', 'SLA target paused'), ('sla_resumed', 'SLA target resumed'), ('sla_fulfilled', 'SLA target fulfilled'), ('sla_breached', 'SLA target breached'), ('sla_cancelled', 'SLA target cancelled'), ('pending_until', 'Pending until')], max_length=20),
        ),
        migrations.AddIndex(
            model_name='ticket',
            index=models.Index(condition=models.Q(('pending_until__isnull', False)), fields=['pending_until'], name='ticket_pending_until'),
        ),
        migrations.CreateModel(
            name='TicketFollower',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(verbose_name='following since')),
                ('ticket', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='followers', to='tickets.ticket')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='followed_tickets', to=settings.AUTH_USER_MODEL, verbose_name='agent')),
            ],
            options={
                'verbose_name': 'ticket follower',
                'verbose_name_plural': 'ticket followers',
                'indexes': [models.Index(fields=['user', '-created_at'], name='ticket_follower_user')],
                'constraints': [models.UniqueConstraint(fields=('ticket', 'user'), name='ticket_follower_unique')],
            },
        ),
        migrations.CreateModel(
            name='MessageMention',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(verbose_name='mentioned at')),
                ('message', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='mentions', to='tickets.message')),
                ('ticket', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tickets.ticket')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='mentions', to=settings.AUTH_USER_MODEL, verbose_name='agent')),
            ],
            options={
                'verbose_name': 'mention',
                'verbose_name_plural': 'mentions',
                'indexes': [models.Index(fields=['user', 'ticket'], name='mention_user_ticket')],
                'constraints': [models.UniqueConstraint(fields=('message', 'user'), name='message_mention_unique')],
            },
        ),
    ]
