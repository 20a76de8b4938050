from django.db import migrations


def create_default_queue(apps, schema_editor):
    Queue = apps.get_model("tickets", "Queue")
    Queue.objects.get_or_create(slug="support", defaults={"name": "Support"})


class Migration(migrations.Migration):
    dependencies = [("tickets", "0001_initial")]
    operations = [migrations.RunPython(create_default_queue, migrations.RunPython.noop)]
