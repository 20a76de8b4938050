import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookEvent',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('type', models.CharField(choices=[('ticket.created', 'Ticket created'), ('ticket.updated', 'Ticket updated'), ('ticket.solved', 'Ticket solved'), ('message.created', 'Message created'), ('chat.started', 'Chat started'), ('chat.ended', 'Chat ended'), ('call.ended', 'Call ended'), ('rating.received', 'Rating received')], max_length=30, verbose_name='type')),
                ('version', models.PositiveSmallIntegerField(default=1, verbose_name='version')),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name='created')),
                ('data', models.JSONField(default=dict, verbose_name='data')),
                ('ticket_id', models.BigIntegerField(blank=True, null=True, verbose_name='ticket id')),
                ('dedupe_key', models.CharField(blank=True, max_length=200, null=True, unique=True, verbose_name='dedupe key')),
                ('dispatched_at', models.DateTimeField(blank=True, null=True, verbose_name='dispatched')),
            ],
            options={
                'verbose_name': 'webhook event',
                'verbose_name_plural': 'webhook events',
                'ordering': ['-created_at'],
                'indexes': [models.Index(condition=models.Q(('dispatched_at', None)), fields=['created_at'], name='webhook_event_undispatched')],
            },
        ),
        migrations.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.URLField(max_length=2000, verbose_name='URL')),
                ('description', models.CharField(blank=True, max_length=300, verbose_name='description')),
                ('event_types', models.JSONField(default=list, verbose_name='event types')),
                ('secret_encrypted', models.TextField(verbose_name='secret (encrypted)')),
                ('is_active', models.BooleanField(default=True, verbose_name='active')),
                ('paused_reason', models.CharField(blank=True, choices=[('manual', 'Paused by hand'), ('failing', 'Paused after 24 hours of failed deliveries')], max_length=10, verbose_name='paused because')),
                ('paused_at', models.DateTimeField(blank=True, null=True, verbose_name='paused at')),
                ('failing_since', models.DateTimeField(blank=True, null=True, verbose_name='failing since')),
                ('allow_private_addresses', models.BooleanField(default=False, verbose_name='allow private addresses')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created')),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='updated')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'webhook endpoint',
                'verbose_name_plural': 'webhook endpoints',
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Delivered'), ('failed', 'Failed')], default='pending', max_length=10, verbose_name='state')),
                ('attempts', models.PositiveIntegerField(default=0, verbose_name='attempts')),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True, verbose_name='next attempt')),
                ('claimed_until', models.DateTimeField(blank=True, null=True, verbose_name='claimed until')),
                ('last_status_code', models.PositiveIntegerField(blank=True, null=True, verbose_name='last response code')),
                ('last_error', models.CharField(blank=True, max_length=300, verbose_name='last error')),
                ('delivered_at', models.DateTimeField(blank=True, null=True, verbose_name='delivered')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created')),
                ('endpoint', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='webhooks.webhookendpoint')),
                ('event', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='webhooks.webhookevent')),
            ],
            options={
                'verbose_name': 'webhook delivery',
                'verbose_name_plural': 'webhook deliveries',
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['endpoint', '-created_at', '-id'], name='webhook_delivery_endpoint'), models.Index(condition=models.Q(('state', 'pending')), fields=['next_attempt_at'], name='webhook_delivery_due')],
                'constraints': [models.UniqueConstraint(fields=('endpoint', 'event'), name='webhook_delivery_once_per_endpoint')],
            },
        ),
        migrations.CreateModel(
            name='WebhookAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField(verbose_name='attempt')),
                ('at', models.DateTimeField(verbose_name='at')),
                ('duration_ms', models.PositiveIntegerField(default=0, verbose_name='duration (ms)')),
                ('status_code', models.PositiveIntegerField(blank=True, null=True, verbose_name='response code')),
                ('response_excerpt', models.CharField(blank=True, max_length=500, verbose_name='response excerpt')),
                ('error', models.CharField(blank=True, max_length=300, verbose_name='error')),
                ('succeeded', models.BooleanField(default=False, verbose_name='succeeded')),
                ('manual', models.BooleanField(default=False, verbose_name='redelivered by hand')),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_log', to='webhooks.webhookdelivery')),
            ],
            options={
                'verbose_name': 'webhook attempt',
                'verbose_name_plural': 'webhook attempts',
                'ordering': ['delivery', 'number'],
                'constraints': [models.UniqueConstraint(fields=('delivery', 'number'), name='webhook_attempt_number')],
            },
        ),
    ]
