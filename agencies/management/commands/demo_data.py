"""Demo data for a first look: a staff admin and subscription plans (and, as the product grows, a portal, agencies).

Idempotent: running it again keeps what exists and prints the same credentials.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from agencies.models import User
from portals.demo import ensure_demo_portal
from subscriptions.demo import ensure_demo_plans

DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_ADMIN_PASSWORD = "demo-admin-password"


class Command(BaseCommand):
    help = "Creates demo data (staff admin, plans, ...) and prints how to use it."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the server listens.")

    @transaction.atomic
    def handle(self, *args, base_url: str, **options):
        admin, created = User.objects.get_or_create(
            email=DEMO_ADMIN_EMAIL, defaults={"is_staff": True, "is_superuser": True, "full_name": "Demo Admin"}
        )
        if created:
            admin.set_password(DEMO_ADMIN_PASSWORD)
            admin.save(update_fields=["password"])
        plans = ensure_demo_plans(actor=admin)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  Staff admin: {DEMO_ADMIN_EMAIL} / {DEMO_ADMIN_PASSWORD}  ({base_url}/admin/)")
        self.stdout.write(
            f"  Plans: {', '.join(plan.name for plan in plans)}  ({base_url}/api/mobile/subscription/plans)"
        )
        ensure_demo_portal(actor=admin, base_url=base_url, write=self.stdout.write)
