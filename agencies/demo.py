"""Demo agencies: two agencies sharing ZIP codes 10001 and 10002, so the demo portal's
first leads are offered in rotation. Idempotent by email."""

from django.db import transaction
from django.utils import timezone

from subscriptions import services as subscription_services
from subscriptions.models import Plan, Subscription

from .models import Agency
from .services import register_agency

DEMO_AGENCY_PASSWORD = "demo-agency-password"
DEMO_AGENCIES = (("north@example.com", "North Shore Insurance"), ("south@example.com", "South Side Realty"))
DEMO_ZIPCODES = ["10001", "10002"]


@transaction.atomic
def ensure_demo_agencies(*, plan: Plan) -> list[Agency]:
    agencies = []
    for email, business_name in DEMO_AGENCIES:
        agency = Agency.objects.filter(user__email=email).first()
        if agency is None:
            agency = register_agency(email=email, password=DEMO_AGENCY_PASSWORD, business_name=business_name)
        if not Subscription.objects.live().filter(agency=agency).exists():
            subscription_services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=DEMO_ZIPCODES, now=timezone.now())
        agencies.append(agency)
    return agencies
