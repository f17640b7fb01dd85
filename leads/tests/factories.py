import factory
from django.db import transaction
from django.utils import timezone

from agencies.tests.factories import AgencyFactory
from leads import distribution
from leads.models import Lead, LeadStatus
from portals.models import Portal
from subscriptions import services as subscription_services
from subscriptions.tests.factories import PlanFactory


class PortalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Portal
        django_get_or_create = ("code",)

    code = "test-portal"
    name = "Test portal"


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    portal = factory.SubFactory(PortalFactory)
    status = LeadStatus.NEW
    received_at = factory.LazyFunction(timezone.now)
    first_name = "Ada"
    last_name = factory.Sequence(lambda n: f"Lovelace{n}")
    email = factory.Sequence(lambda n: f"lead{n}@example.com")
    phone = "+12125550100"
    zipcode = "10001"
    city = "New York"
    state = "NY"
    lead_type = "auto"


def subscribed_agency(*zipcodes: str, cap: int | None = None, now=None, **agency_fields):
    """An active agency whose live subscription covers `zipcodes` (plan cap `cap`)."""
    agency = AgencyFactory(**agency_fields)
    plan = PlanFactory(monthly_lead_cap=cap, max_zipcodes=max(3, len(zipcodes)))
    subscription_services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=list(zipcodes), now=now or timezone.now())
    return agency


@transaction.atomic
def distribute_lead(*, lead_id: int, now):
    """Offers one `new` or `unassigned` lead through the engine, as a distribution run does
    for each lead of its batch (leads in any other state, or unknown ids, are left alone)."""
    lead = Lead.objects.select_for_update(no_key=True).filter(pk=lead_id).first()
    if lead is None or lead.status not in (LeadStatus.NEW, LeadStatus.UNASSIGNED):
        return lead
    distribution.distribute(leads=[lead], now=now, use_coverage_cache=True)
    return lead
