"""Reads of leads and offers that are more than a one-line queryset."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, models
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from agencies.models import Agency
from portals.models import Reception

from .models import Lead, LeadStatus, Offer, OfferStatus


class Median(models.Aggregate):
    """PostgreSQL's exact median of a numeric expression."""

    function = "PERCENTILE_CONT"
    name = "median"
    output_field = models.FloatField()
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"


def _current_offer(field: str) -> Subquery:
    return Subquery(
        Offer.objects.filter(lead=OuterRef("pk"), status__in=(OfferStatus.OFFERED, OfferStatus.ACCEPTED))
        .order_by("-offered_at", "-id")
        .values(field)[:1]
    )


# The lead APIs read values() rows (dicts) of the columns below rather than models: on a page
# of 50, building models and serializing them field by field through DRF was about half of
# the request's Python time. The serializers in api/serializers.py read these keys.

# What an agency sees of a lead before it accepts: enough to decide, not enough to call...
TEASER_FIELDS = ("lead_type", "zipcode", "city", "state", "first_name", "received_at")
# ...and what it sees once it accepted.
CONTACT_FIELDS = ("last_name", "email", "phone", "address", "details")
AGENCY_LEAD_COLUMNS = (
    "id",
    "lead_id",
    "status",
    "offered_at",
    "expires_at",
    "responded_at",
    *(f"lead__{field}" for field in TEASER_FIELDS + CONTACT_FIELDS),
)


def agency_leads(agency, *, now: datetime) -> models.QuerySet:
    """The offers through which an agency sees its leads (`Offer.objects.visible_to`), newest
    first; the list reads them as rows of AGENCY_LEAD_COLUMNS."""
    return Offer.objects.visible_to(agency, now=now).order_by("-offered_at", "-id")


def agency_lead(agency, *, lead_id: int, now: datetime) -> dict | None:
    """One lead the agency sees, as a row of AGENCY_LEAD_COLUMNS."""
    return agency_leads(agency, now=now).filter(lead_id=lead_id).values(*AGENCY_LEAD_COLUMNS).first()


def admin_leads() -> models.QuerySet:
    """Leads for the staff list: portal joined, agency of the live or accepted offer annotated.
    The API reads them as rows of ADMIN_LEAD_COLUMNS."""
    # The name by the agency's primary key, not a second join of the offer to agencies: PostgreSQL
    # hashed the whole agency table for that join on every row of the page.
    agency_name = Agency.objects.filter(pk=OuterRef("current_agency_id")).values("business_name")
    return (
        Lead.objects.select_related("portal")
        .annotate(current_agency_id=_current_offer("agency_id"))
        .annotate(current_agency_name=Subquery(agency_name))
    )


ADMIN_LEAD_COLUMNS = (
    "id",
    "status",
    "received_at",
    "status_changed_at",
    "portal__code",
    "zipcode",
    "city",
    "state",
    "lead_type",
    "first_name",
    "last_name",
    "email",
    "phone",
    "is_test",
    "duplicate_of",
    "external_id",
    "current_agency_id",
    "current_agency_name",
)
ADMIN_LEAD_DETAIL_COLUMNS = (
    *ADMIN_LEAD_COLUMNS,
    "address",
    "details",
    "tcpa_consent",
    "consent_text",
    "consented_at",
    "consent_ip",
    "certificate_url",
    "idempotency_key",
)


def admin_lead_detail(lead_id: int) -> dict | None:
    """One lead as a row of ADMIN_LEAD_DETAIL_COLUMNS, with every offer (oldest first, with its
    decision trace) under "offers" and its receptions under "receptions"."""
    lead = admin_leads().filter(pk=lead_id).values(*ADMIN_LEAD_DETAIL_COLUMNS).first()
    if lead is not None:
        lead["offers"] = list(
            Offer.objects.filter(lead_id=lead_id).select_related("agency", "assigned_by").order_by("offered_at", "id")
        )
        lead["receptions"] = list(Reception.objects.filter(lead_id=lead_id).order_by("received_at", "id"))
    return lead


def _response_seconds():
    return models.ExpressionWrapper(
        models.Func(
            F("responded_at") - F("offered_at"), function="EXTRACT", template="EXTRACT(EPOCH FROM %(expressions)s)"
        ),
        output_field=models.FloatField(),
    )


def distribution_stats(*, received_from: datetime | None, received_to: datetime | None) -> dict:
    """Offer outcomes per agency, lead flow per ZIP code, portal and day, and the current backlog.

    Offers are counted by `offered_at` and leads by `received_at` within the range.
    """
    offers = Offer.objects.all()
    leads = Lead.objects.all()
    if received_from:
        offers, leads = offers.filter(offered_at__gte=received_from), leads.filter(received_at__gte=received_from)
    if received_to:
        offers, leads = offers.filter(offered_at__lt=received_to), leads.filter(received_at__lt=received_to)

    outcome_counts = {
        "awaiting": Count("id", filter=Q(status=OfferStatus.OFFERED)),
        **{status: Count("id", filter=Q(status=status)) for status in OfferStatus.values if status != "offered"},
    }
    per_agency_values = dict(offers=Count("id"), agency_name=F("agency__business_name"), **outcome_counts)
    if connection.vendor == "postgresql":
        per_agency_values["median_response_seconds"] = Median(_response_seconds(), filter=Q(responded_at__isnull=False))
    per_agency = []
    for row in offers.values("agency_id").annotate(**per_agency_values).order_by("-offers", "agency_id"):
        answered = row["accepted"] + row["rejected"] + row["expired"]
        per_agency.append(
            {
                **row,
                "acceptance_rate": round(row["accepted"] / answered, 4) if answered else None,
                "median_response_seconds": row.get("median_response_seconds"),
            }
        )

    lead_counts = dict(
        received=Count("id"),
        offered=Count("id", filter=Q(status=LeadStatus.OFFERED)),
        accepted=Count("id", filter=Q(status=LeadStatus.ACCEPTED)),
        unassigned=Count("id", filter=Q(status=LeadStatus.UNASSIGNED)),
        duplicates=Count("id", filter=Q(status=LeadStatus.DUPLICATE)),
        tests=Count("id", filter=Q(status=LeadStatus.TEST)),
    )
    return {
        "per_agency": per_agency,
        "per_zipcode": list(leads.values("zipcode").annotate(**lead_counts).order_by("-received", "zipcode")[:100]),
        "per_portal": list(
            leads.values("portal_id", portal_code=F("portal__code"))
            .annotate(**lead_counts)
            .order_by("-received", "portal_id")
        ),
        "per_day": list(
            leads.annotate(day=TruncDate("received_at")).values("day").annotate(**lead_counts).order_by("day")
        ),
        "currently_unassigned": Lead.objects.filter(status=LeadStatus.UNASSIGNED).count(),
        "awaiting_response": Offer.objects.live().count(),
    }


@dataclass
class Window:
    label: str
    start: datetime
    received: int = 0
    offered: int = 0
    accepted: int = 0
    unassigned: int = 0


@dataclass
class Dashboard:
    now: datetime
    windows: list[Window]
    top_zipcodes: list[dict]
    portals: list[dict]
    days: list[dict]


def dashboard_figures(*, now: datetime, top: int = 10, chart_days: int = 14) -> Dashboard:
    """Today's and this week's distribution figures for the admin dashboard (days and weeks
    start at midnight, Monday, in TIME_ZONE), in a constant number of queries.

    received: leads that arrived; offered: offers made; accepted: offers accepted;
    unassigned: leads that arrived and are unassigned now.
    """
    local = timezone.localtime(now)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    windows = [Window("Today", today), Window("This week", today - timedelta(days=today.weekday()))]
    oldest = min(window.start for window in windows)

    leads = Lead.objects.filter(received_at__gte=oldest, received_at__lte=now)
    offers = Offer.objects.filter(Q(offered_at__gte=oldest) | Q(responded_at__gte=oldest))
    lead_counts = leads.aggregate(
        **{
            f"{key}_{n}": Count("id", filter=Q(received_at__gte=window.start, **extra))
            for n, window in enumerate(windows)
            for key, extra in (("received", {}), ("unassigned", {"status": LeadStatus.UNASSIGNED}))
        }
    )
    offer_counts = offers.aggregate(
        **{
            f"{key}_{n}": Count("id", filter=condition)
            for n, window in enumerate(windows)
            for key, condition in (
                ("offered", Q(offered_at__gte=window.start)),
                ("accepted", Q(status=OfferStatus.ACCEPTED, responded_at__gte=window.start)),
            )
        }
    )
    for n, window in enumerate(windows):
        window.received, window.unassigned = lead_counts[f"received_{n}"], lead_counts[f"unassigned_{n}"]
        window.offered, window.accepted = offer_counts[f"offered_{n}"], offer_counts[f"accepted_{n}"]

    week = leads.filter(received_at__gte=windows[1].start)
    first_day = today - timedelta(days=chart_days - 1)
    per_day = {
        row["day"]: row
        for row in Lead.objects.filter(received_at__gte=first_day, received_at__lte=now)
        .annotate(day=TruncDate("received_at"))
        .values("day")
        .annotate(received=Count("id"), accepted=Count("id", filter=Q(status=LeadStatus.ACCEPTED)))
        .order_by("day")
    }
    days = []
    for offset in range(chart_days):
        day = (first_day + timedelta(days=offset)).date()
        row = per_day.get(day, {})
        days.append({"day": day, "received": row.get("received", 0), "accepted": row.get("accepted", 0)})
    return Dashboard(
        now=now,
        windows=windows,
        top_zipcodes=list(
            week.values("zipcode")
            .annotate(received=Count("id"), accepted=Count("id", filter=Q(status=LeadStatus.ACCEPTED)))
            .order_by("-received", "zipcode")[:top]
        ),
        portals=list(
            leads.values("portal_id", portal_code=F("portal__code"))
            .annotate(
                today=Count("id", filter=Q(received_at__gte=windows[0].start)),
                week=Count("id", filter=Q(received_at__gte=windows[1].start)),
            )
            .order_by("-week", "portal_code")
        ),
        days=days,
    )
