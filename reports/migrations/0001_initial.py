from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="CalendarInterval",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("calendar_key", models.CharField(max_length=64)),
                ("start_us", models.BigIntegerField()),
                ("end_us", models.BigIntegerField()),
                ("cum_before_us", models.BigIntegerField()),
            ],
            options={
                "indexes": [models.Index(fields=["calendar_key", "start_us"], name="reports_interval_key_start")],
            },
        ),
    ]
