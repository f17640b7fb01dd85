from decimal import Decimal

import factory

from subscriptions.models import Plan


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    name = factory.Sequence(lambda n: f"Plan {n}")
    price_per_zipcode = Decimal("10.00")
    base_price = Decimal("0.00")
    max_zipcodes = 3
    monthly_lead_cap = 50
    display_order = factory.Sequence(lambda n: n)
