from django.db import migrations, models

from leadmarket.migration_operations import AddIndexConcurrently, RemoveIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # built and dropped concurrently: leads keep being written

    dependencies = [
        ('leads', '0008_offer_list_index_covers_visibility'),
    ]

    operations = [
        # The new index first, so the staff list by ZIP code is never without one.
        AddIndexConcurrently(
            model_name='lead',
            index=models.Index(fields=['zipcode', '-received_at', '-id'], include=('status',), name='lead_zipcode_list_idx'),
        ),
        RemoveIndexConcurrently(
            model_name='lead',
            name='lead_zipcode_recent_idx',
        ),
    ]
