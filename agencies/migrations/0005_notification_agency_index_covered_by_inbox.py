import django.db.models.deletion
from django.db import migrations, models

# The agency's own index is redundant: notification_inbox_idx (agency, -created_at, -id) starts
# with it and serves every lookup by agency, including the CASCADE from a deleted agency.
# Written by hand: Django's AlterField would drop and re-add the foreign key constraint
# (re-checking every row under an exclusive lock) just to drop the index.
FORWARD = 'DROP INDEX IF EXISTS "agencies_notification_agency_id_b17f388a"'
BACKWARD = (
    'CREATE INDEX IF NOT EXISTS "agencies_notification_agency_id_b17f388a" ON "agencies_notification" ("agency_id")'
)


class Migration(migrations.Migration):
    dependencies = [
        ("agencies", "0004_push_attempt_times"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="notification",
                    name="agency",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="notifications",
                        to="agencies.agency",
                    ),
                ),
            ],
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
        ),
    ]
