# Kinds of follow-up notices, notices kept out of the workspace, preferences and reminders (docs/followups.md).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0003_notification_email_owed_since'),
        ('tickets', '0024_followups'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='notification',
            name='in_app',
            field=models.BooleanField(default=True, verbose_name='shown in the workspace'),
        ),
        migrations.AlterField(
            model_name='notification',
            name='kind',
            field=models.CharField(choices=[('sla_warning', 'SLA warning'), ('sla_breach', 'SLA breach'), ('customer_message', 'New customer message'), ('assigned', 'Ticket assigned to you'), ('mention', 'Mention in an internal note'), ('reminder', 'Reminder'), ('ticket_status', 'Status change on a ticket you follow')], max_length=30, verbose_name='kind'),
        ),
        migrations.RemoveIndex(
            model_name='notification',
            name='notification_user_unread',
        ),
        migrations.AddIndex(
            model_name='notification',
            index=models.Index(condition=models.Q(('in_app', True), ('read_at__isnull', True)), fields=['user'], name='notification_user_unread_shown'),
        ),
        migrations.CreateModel(
            name='NotificationPreference',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('sla_warning', 'SLA warning'), ('sla_breach', 'SLA breach'), ('customer_message', 'New customer message'), ('assigned', 'Ticket assigned to you'), ('mention', 'Mention in an internal note'), ('reminder', 'Reminder'), ('ticket_status', 'Status change on a ticket you follow')], max_length=30, verbose_name='kind')),
                ('in_app', models.BooleanField(default=True, verbose_name='in the workspace')),
                ('email', models.BooleanField(default=True, verbose_name='by email')),
                ('updated_at', models.DateTimeField(verbose_name='updated')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notification_preferences', to=settings.AUTH_USER_MODEL, verbose_name='user')),
            ],
            options={
                'verbose_name': 'notification preference',
                'verbose_name_plural': 'notification preferences',
                'constraints': [models.UniqueConstraint(fields=('user', 'kind'), name='notification_preference_user_kind')],
            },
        ),
        migrations.CreateModel(
            name='Reminder',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('remind_at', models.DateTimeField(verbose_name='remind at')),
                ('note', models.CharField(blank=True, max_length=500, verbose_name='note')),
                ('created_at', models.DateTimeField(verbose_name='created')),
                ('delivered_at', models.DateTimeField(blank=True, null=True, verbose_name='delivered')),
                ('outcome', models.CharField(blank=True, choices=[('sent', 'Sent'), ('not_visible', 'Not sent: the ticket is no longer yours to see')], max_length=20, verbose_name='outcome')),
                ('ticket', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tickets.ticket', verbose_name='ticket')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reminders', to=settings.AUTH_USER_MODEL, verbose_name='agent')),
            ],
            options={
                'verbose_name': 'reminder',
                'verbose_name_plural': 'reminders',
                'ordering': ['remind_at', 'id'],
                'indexes': [models.Index(condition=models.Q(('delivered_at__isnull', True)), fields=['remind_at'], name='reminder_due'), models.Index(fields=['user', 'ticket', 'remind_at'], name='reminder_user_ticket')],
            },
        ),
    ]
