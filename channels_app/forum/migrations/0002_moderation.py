# Moderation: why a post is held, and the actions "rejected" and "held for approval" in the log.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("forum_channel", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="post",
            name="hold_reason",
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.AlterField(
            model_name="moderationaction",
            name="action",
            field=models.CharField(
                choices=[
                    ("approve", "Approved"),
                    ("reject", "Rejected"),
                    ("hold", "Held for approval"),
                    ("hide", "Hidden"),
                    ("unhide", "Shown again"),
                    ("lock", "Locked"),
                    ("unlock", "Unlocked"),
                    ("pin", "Pinned"),
                    ("unpin", "Unpinned"),
                    ("move", "Moved"),
                    ("merge", "Merged"),
                    ("suspend", "Member suspended"),
                    ("unsuspend", "Suspension lifted"),
                    ("flags_dismiss", "Flags dismissed"),
                    ("escalate", "Escalated to a ticket"),
                ],
                max_length=14,
            ),
        ),
    ]
