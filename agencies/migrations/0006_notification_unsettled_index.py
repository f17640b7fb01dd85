from django.db import migrations, models

from leadmarket.migration_operations import AddIndexConcurrently, RemoveIndexConcurrently

# Rows need no update: `pushed_at` has always been set with every final push status, and the
# sweeper still checks the status, so an old row without it is only an extra index entry.


class Migration(migrations.Migration):
    atomic = False  # built and dropped concurrently: notifications keep being written

    dependencies = [
        ("agencies", "0005_notification_agency_index_covered_by_inbox"),
    ]

    operations = [
        migrations.AlterField(
            model_name="notification",
            name="pushed_at",
            field=models.DateTimeField(
                blank=True, help_text="When pushing ended: sent, no active device, or failed for good.", null=True
            ),
        ),
        # The new index first, so the sweeper is never without one.
        AddIndexConcurrently(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("pushed_at__isnull", True)), fields=["created_at"], name="notification_unsettled_idx"
            ),
        ),
        RemoveIndexConcurrently(
            model_name="notification",
            name="notification_push_queue_idx",
        ),
    ]
