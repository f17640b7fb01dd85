from django.db import migrations, models

from leadmarket.migration_operations import AddIndexConcurrently, RemoveIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # built and dropped concurrently: leads keep being written

    dependencies = [
        ("leads", "0009_zipcode_list_index_covers_status"),
    ]

    operations = [
        # The new indexes first, so the staff list by ZIP code is never without one.
        AddIndexConcurrently(
            model_name="lead",
            index=models.Index(fields=["zipcode", "-received_at", "-id"], name="lead_zipcode_recent_idx"),
        ),
        AddIndexConcurrently(
            model_name="lead",
            index=models.Index(
                fields=["zipcode", "status", "-received_at", "-id"], name="lead_zipcode_status_list_idx"
            ),
        ),
        RemoveIndexConcurrently(
            model_name="lead",
            name="lead_zipcode_list_idx",
        ),
    ]
