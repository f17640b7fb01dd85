import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Each offer made and each lead status change inserts into every index of the table. These
# foreign key indexes are redundant or nearly empty:
# - offer.lead, offer.agency, offer.subscription: the first column of one_offer_per_lead_and_agency,
#   offer_agency_recent_idx and offer_subscription_period_idx, which serve the same lookups;
# - offer.assigned_by and lead.duplicate_of: NULL on almost every row; partial indexes over the
#   rows that have one serve the lookups (a `= id` condition implies IS NOT NULL).
# Written by hand: Django's AlterField to db_index=False drops every single-column index on the
# column, which for offer.lead includes the one_live_offer_per_lead constraint, and drops and
# re-adds each foreign key constraint (re-checking every row under an exclusive lock).
REDUNDANT = {
    "leads_offer_lead_id_ffff0825": ("leads_offer", "lead_id"),
    "leads_offer_agency_id_d65f714a": ("leads_offer", "agency_id"),
    "leads_offer_subscription_id_1d4a3a39": ("leads_offer", "subscription_id"),
    "leads_offer_assigned_by_id_743eb528": ("leads_offer", "assigned_by_id"),
    "leads_lead_duplicate_of_id_8a59af48": ("leads_lead", "duplicate_of_id"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0005_lead_unassigned_index"),
        ("portals", "0001_initial"),
        ("subscriptions", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(
                condition=models.Q(("duplicate_of__isnull", False)), fields=["duplicate_of"], name="lead_duplicate_of_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="offer",
            index=models.Index(
                condition=models.Q(("assigned_by__isnull", False)), fields=["assigned_by"], name="offer_assigned_by_idx"
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="lead",
                    name="duplicate_of",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="duplicates",
                        to="leads.lead",
                    ),
                ),
                migrations.AlterField(
                    model_name="offer",
                    name="agency",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="offers",
                        to="agencies.agency",
                    ),
                ),
                migrations.AlterField(
                    model_name="offer",
                    name="assigned_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        help_text="Staff user who distributed the lead by hand.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="offer",
                    name="lead",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="offers",
                        to="leads.lead",
                    ),
                ),
                migrations.AlterField(
                    model_name="offer",
                    name="subscription",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        help_text="The subscription whose period cap this offer counts towards.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="offers",
                        to="subscriptions.subscription",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")',
                )
                for name, (table, column) in REDUNDANT.items()
            ],
        ),
    ]
