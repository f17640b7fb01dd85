"""Reads of subscriptions, territories, billing and plans that are more than one queryset."""

import logging
import uuid
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Prefetch, Q, QuerySet

from agencies.models import Agency

from .models import LIVE_STATUSES, PLAN_FIELDS, LedgerEntry, Plan, Subscription, Territory

logger = logging.getLogger(__name__)

CATALOGUE_FIELDS = ("id", *PLAN_FIELDS)
CATALOGUE_VERSION_KEY = "subscriptions:plan-catalogue:version"
CATALOGUE_TIMEOUT_SECONDS = 10 * 60


def plan_catalogue() -> list[dict]:
    """The active plans in display order (CATALOGUE_FIELDS), from the cache when it holds them.

    The list is cached under a version token that every plan change replaces after its
    commit, so a reader that loaded the plans before a change can only fill a key nobody
    reads any more. The cache is an optimisation: when it fails, the database answers.
    """
    try:
        key = _catalogue_key()
        cached = cache.get(key)
    except Exception:
        logger.warning("plan catalogue cache unavailable, reading the database", exc_info=True)
        return _active_plans()
    if cached is not None:
        return cached
    plans = _active_plans()
    try:
        cache.set(key, plans, CATALOGUE_TIMEOUT_SECONDS)
    except Exception:
        logger.warning("plan catalogue cache unavailable, not cached", exc_info=True)
    return plans


def invalidate_plan_catalogue() -> None:
    """Retires the cached catalogue; plan services call it after their commit."""
    try:
        cache.set(CATALOGUE_VERSION_KEY, uuid.uuid4().hex, None)
    except Exception:
        # The cached copy then lives out its timeout.
        logger.warning("plan catalogue cache unavailable, not invalidated", exc_info=True)


def _catalogue_key() -> str:
    version = cache.get(CATALOGUE_VERSION_KEY)
    if version is None:
        candidate = uuid.uuid4().hex
        version = candidate if cache.add(CATALOGUE_VERSION_KEY, candidate, None) else cache.get(CATALOGUE_VERSION_KEY)
    return f"subscriptions:plan-catalogue:{version}"


def _active_plans() -> list[dict]:
    return list(Plan.objects.active().in_display_order().values(*CATALOGUE_FIELDS))


def plans_for_staff() -> QuerySet[Plan]:
    """Every plan with its number of live subscriptions, in display order."""
    return Plan.objects.annotate(
        live_subscriptions=Count("subscriptions", filter=Q(subscriptions__status__in=LIVE_STATUSES))
    ).in_display_order()


def current_subscription(agency: Agency) -> Subscription | None:
    """The agency's live subscription with its plan and territories, or None."""
    return (
        Subscription.objects.for_agency(agency)
        .live()
        .select_related("plan")
        .prefetch_related(Prefetch("territories", queryset=Territory.objects.order_by("zipcode")))
        .first()
    )


def agency_territories(agency: Agency) -> QuerySet[Territory]:
    """The ZIP codes the agency holds through its live subscription."""
    return Territory.objects.for_agency(agency).live().select_related("subscription").order_by("zipcode", "id")


def billing_history(agency: Agency) -> QuerySet[LedgerEntry]:
    """The agency's ledger, newest first, each entry with the balance right after it."""
    return LedgerEntry.objects.for_agency(agency).with_running_balance().order_by("-created_at", "-id")


def agency_balance(agency: Agency) -> Decimal:
    """What the agency owes (positive) or has in hand (negative); see the sign convention in models.py."""
    return LedgerEntry.objects.for_agency(agency).balance()
