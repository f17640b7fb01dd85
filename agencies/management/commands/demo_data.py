"""Demo data for a first look: a staff admin, subscription plans, two agencies and a portal.

Idempotent: running it again keeps what exists and prints the same credentials.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from agencies.demo import DEMO_AGENCY_PASSWORD, DEMO_ZIPCODES, ensure_demo_agencies
from agencies.models import User
from portals.demo import ensure_demo_portal
from subscriptions.demo import ensure_demo_plans

DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_ADMIN_PASSWORD = "demo-admin-password"


class Command(BaseCommand):
    help = "Creates demo data (staff admin, plans, agencies, a portal) and prints how to use it."

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
            f"  Plans: {', '.join(plan.name for plan in plans if plan.is_active)}"
            f"  ({base_url}/api/mobile/subscription/plans)"
        )
        agencies = ensure_demo_agencies(plan=next(plan for plan in plans if plan.name == "Growth"))
        self.stdout.write(
            f"  Agencies (mobile app login, password {DEMO_AGENCY_PASSWORD}): "
            + ", ".join(agency.user.email for agency in agencies)
            + f"; both cover ZIP codes {', '.join(DEMO_ZIPCODES)}"
        )
        ensure_demo_portal(actor=admin, base_url=base_url, write=self.stdout.write)
