"""Staff reads of agencies: the list with subscription summary and lead counts, and one
agency's overview."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from leads.models import Offer, OfferStatus
from subscriptions.models import LIVE_STATUSES, Subscription, Territory
from subscriptions.selectors import agency_balance, current_subscription

from .models import Agency

RECENT_LEADS = 10


def _count(queryset: QuerySet) -> Coalesce:
    """The number of rows of a correlated queryset, as one subquery (no join fan-out)."""
    counted = queryset.order_by().values("agency_id").annotate(n=Count("id")).values("n")[:1]
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def live_subscription_of_row() -> QuerySet[Subscription]:
    return Subscription.objects.live().filter(agency=OuterRef("pk")).order_by("-started_at", "-id")


def admin_agencies() -> QuerySet[Agency]:
    """Agencies with their owner's email, a summary of the live subscription (plan, status,
    ZIP codes, period end) and lead counts, each a subquery: a constant number of queries."""
    live = live_subscription_of_row()
    offers = Offer.objects.filter(agency=OuterRef("pk"))
    zipcodes = Territory.objects.filter(subscription__agency=OuterRef("pk"), subscription__status__in=LIVE_STATUSES)
    zipcode_count = zipcodes.order_by().values("subscription__agency_id").annotate(n=Count("id")).values("n")[:1]
    return Agency.objects.select_related("user").annotate(
        live_subscription_id=Subquery(live.values("id")[:1]),
        live_subscription_status=Subquery(live.values("status")[:1]),
        live_plan_name=Subquery(live.values("plan__name")[:1]),
        live_period_end=Subquery(live.values("current_period_end")[:1]),
        live_zipcode_count=Coalesce(Subquery(zipcode_count, output_field=IntegerField()), Value(0)),
        leads_offered=_count(offers),
        leads_awaiting=_count(offers.filter(status=OfferStatus.OFFERED)),
        leads_accepted=_count(offers.filter(status=OfferStatus.ACCEPTED)),
    )


def with_live_subscription(agencies: QuerySet[Agency], value: bool) -> QuerySet[Agency]:
    has_live = Exists(Subscription.objects.live().filter(agency=OuterRef("pk")))
    return agencies.filter(has_live if value else ~has_live)


def covering_zipcode(agencies: QuerySet[Agency], zipcode: str) -> QuerySet[Agency]:
    """Agencies whose live subscription holds `zipcode`."""
    return agencies.filter(
        Exists(Territory.objects.live().filter(subscription__agency=OuterRef("pk"), zipcode=zipcode))
    )


def search_agencies(agencies: QuerySet[Agency], text: str) -> QuerySet[Agency]:
    text = text.strip()
    return agencies.filter(
        Q(business_name__icontains=text) | Q(user__email__icontains=text) | Q(contact_name__icontains=text)
    )


@dataclass
class AgencyOverview:
    agency: Agency
    subscription: Subscription | None
    territories: list[Territory]
    balance: Decimal
    recent_offers: list[Offer]
    offer_stats: dict


def admin_agency_overview(agency_id: int) -> AgencyOverview | None:
    """One agency for staff: profile, live subscription with its ZIP codes, balance, the
    latest leads offered to it and its offer outcomes."""
    agency = Agency.objects.select_related("user").filter(pk=agency_id).first()
    if agency is None:
        return None
    subscription = current_subscription(agency)
    outcomes = {status: Count("id", filter=Q(status=status)) for status in OfferStatus.values}
    stats = Offer.objects.filter(agency=agency).aggregate(total=Count("id"), **outcomes)
    answered = stats[OfferStatus.ACCEPTED] + stats[OfferStatus.REJECTED] + stats[OfferStatus.EXPIRED]
    stats["acceptance_rate"] = round(stats[OfferStatus.ACCEPTED] / answered, 4) if answered else None
    return AgencyOverview(
        agency=agency,
        subscription=subscription,
        territories=list(subscription.territories.all()) if subscription else [],
        balance=agency_balance(agency),
        recent_offers=list(
            Offer.objects.filter(agency=agency).select_related("lead").order_by("-offered_at", "-id")[:RECENT_LEADS]
        ),
        offer_stats=stats,
    )
