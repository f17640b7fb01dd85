"""Demo plans for a first look, created through the plan service; idempotent by name."""

from decimal import Decimal

from agencies.models import User

from . import services
from .models import Plan

DEMO_PLANS = (
    {
        "name": "Starter",
        "description": "Up to 5 ZIP codes and 25 leads a month.",
        "price_per_zipcode": Decimal("29.00"),
        "base_price": Decimal("0.00"),
        "max_zipcodes": 5,
        "monthly_lead_cap": 25,
        "display_order": 10,
    },
    {
        "name": "Growth",
        "description": "Up to 20 ZIP codes and 100 leads a month.",
        "price_per_zipcode": Decimal("24.00"),
        "base_price": Decimal("49.00"),
        "max_zipcodes": 20,
        "monthly_lead_cap": 100,
        "display_order": 20,
    },
    {
        "name": "Pro",
        "description": "Up to 100 ZIP codes, unlimited leads.",
        "price_per_zipcode": Decimal("19.00"),
        "base_price": Decimal("149.00"),
        "max_zipcodes": 100,
        "monthly_lead_cap": None,
        "display_order": 30,
    },
)


def ensure_demo_plans(*, actor: User | None) -> list[Plan]:
    """The demo plans, creating those that do not exist; existing plans are left as they are."""
    existing = {plan.name: plan for plan in Plan.objects.filter(name__in=[spec["name"] for spec in DEMO_PLANS])}
    return [existing.get(spec["name"]) or services.create_plan(actor=actor, fields=dict(spec)) for spec in DEMO_PLANS]
