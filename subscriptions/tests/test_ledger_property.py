"""For any sequence of operations on one agency, the ledger adds up (Hypothesis)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agencies.tests.factories import AgencyFactory
from leadmarket.errors import DomainError
from subscriptions import selectors, services
from subscriptions.api.serializers import BillingEntrySerializer
from subscriptions.models import EntryKind, LedgerEntry, Subscription

from .conftest import JAN_1
from .factories import PlanFactory

pytestmark = pytest.mark.django_db

ZIPS = ["10001", "90210", "60601", "94105", "02108", "98101"]
MONEY = re.compile(r"^-?\d+\.\d{2}$")

plan_index = st.integers(min_value=0, max_value=2)
zip_index = st.integers(min_value=0, max_value=len(ZIPS) - 1)
DAY = 24 * 3600
# Time passes before every operation: often across a period end within a few steps.
waits = st.one_of(st.sampled_from([0, 3600, DAY, 10 * DAY, 16 * DAY, 31 * DAY]), st.integers(0, 40 * DAY))
operations = st.one_of(
    st.tuples(st.just("subscribe"), plan_index, st.integers(min_value=1, max_value=3)),
    st.tuples(st.just("add"), zip_index),
    st.tuples(st.just("remove"), zip_index),
    st.tuples(st.just("change_plan"), plan_index),
    st.tuples(st.just("cancel"), st.booleans()),
    st.tuples(st.just("renew")),
    st.tuples(st.just("reprice"), plan_index, st.integers(min_value=0, max_value=99_999)),
)
steps = st.lists(st.tuples(waits, operations), min_size=3, max_size=20)


@pytest.fixture
def plans():
    return [
        PlanFactory(price_per_zipcode=Decimal("31.00"), base_price=Decimal("0.00"), max_zipcodes=2),
        PlanFactory(price_per_zipcode=Decimal("19.99"), base_price=Decimal("49.00"), max_zipcodes=4),
        PlanFactory(price_per_zipcode=Decimal("0.01"), base_price=Decimal("7.77"), max_zipcodes=6),
    ]


def apply(step, *, agency, plans, now):
    name, *args = step
    if name == "subscribe":
        plan, count = plans[args[0]], args[1]
        services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=ZIPS[:count], now=now)
    elif name == "add":
        services.add_territory(agency=agency, zipcode=ZIPS[args[0]], now=now)
    elif name == "remove":
        services.remove_territory(agency=agency, zipcode=ZIPS[args[0]], now=now)
    elif name == "change_plan":
        services.change_plan(agency=agency, plan_id=plans[args[0]].pk, now=now)
    elif name == "cancel":
        services.cancel_subscription(agency=agency, immediate=args[0], now=now)
    elif name == "renew":
        services.renew_subscriptions(now=now)
    elif name == "reprice":
        cents = Decimal(args[1]).scaleb(-2)
        services.update_plan(actor=None, plan_id=plans[args[0]].pk, changes={"price_per_zipcode": cents})


def ledger_state(agency):
    return list(LedgerEntry.objects.for_agency(agency).values_list("id", flat=True)), list(
        Subscription.objects.for_agency(agency).order_by("id").values()
    )


def assert_ledger_adds_up(agency):
    entries = list(LedgerEntry.objects.for_agency(agency))
    for entry in entries:
        assert type(entry.amount) is Decimal
        assert entry.amount.as_tuple().exponent == -2
        assert entry.amount >= 0
        assert entry.kind in (EntryKind.CHARGE, EntryKind.CREDIT)
    charges = sum((e.amount for e in entries if e.kind == EntryKind.CHARGE), Decimal("0.00"))
    credits = sum((e.amount for e in entries if e.kind == EntryKind.CREDIT), Decimal("0.00"))

    balance = selectors.agency_balance(agency)

    assert type(balance) is Decimal
    assert balance == charges - credits
    history = BillingEntrySerializer(selectors.billing_history(agency), many=True).data
    if history:
        assert Decimal(history[0]["balance"]) == balance
    for row in history:
        assert all(
            isinstance(row[key], str) and MONEY.match(row[key]) for key in ("amount", "signed_amount", "balance")
        )


def assert_subscription_invariants(agency):
    live = list(Subscription.objects.for_agency(agency).live().select_related("plan"))
    assert len(live) <= 1
    for subscription in live:
        assert subscription.territories.count() <= subscription.plan.max_zipcodes
        assert subscription.current_period_start < subscription.current_period_end


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(first_plan=plan_index, steps=steps)
def test_for_any_sequence_of_operations_the_balance_is_charges_minus_credits(plans, first_plan, steps):
    # Each example runs in a savepoint that is rolled back, so examples do not see each other.
    with transaction.atomic():
        agency = AgencyFactory()
        now = JAN_1
        for wait, step in [(0, ("subscribe", first_plan, 1)), *steps]:
            now += timedelta(seconds=wait)
            before = ledger_state(agency)
            try:
                with transaction.atomic():
                    apply(step, agency=agency, plans=plans, now=now)
            except (DomainError, ValidationError):
                assert ledger_state(agency) == before, f"{step} was refused but changed something"
            assert_ledger_adds_up(agency)
            assert_subscription_invariants(agency)
        transaction.set_rollback(True)
