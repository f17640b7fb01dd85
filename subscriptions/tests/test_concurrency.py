"""Concurrent requests and renewal runs, with real transactions and threads on PostgreSQL."""

import threading
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from agencies.tests.factories import AgencyFactory
from leadmarket.errors import DomainError
from subscriptions import services
from subscriptions.models import EntryReason, LedgerEntry, Subscription, Territory

from .conftest import FEB_1, JAN_1
from .factories import PlanFactory

pytestmark = pytest.mark.django_db(transaction=True)

MAR_1 = datetime(2025, 3, 1, tzinfo=UTC)


def run_together(*calls) -> list:
    """Runs the calls in threads released at the same moment; each result or the exception raised."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_concurrent_renewal_runs_charge_each_period_once():
    plan = PlanFactory(price_per_zipcode=Decimal("31.00"))
    agencies = AgencyFactory.create_batch(12)
    for agency in agencies:
        services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=JAN_1)

    summaries = run_together(*[lambda: services.renew_subscriptions(now=FEB_1)] * 2)

    assert all(isinstance(summary, services.RenewalSummary) for summary in summaries), summaries
    assert sum(summary.renewed for summary in summaries) == 12
    charges = LedgerEntry.objects.filter(reason=EntryReason.RENEWAL)
    assert charges.count() == 12
    assert set(Counter(charges.values_list("subscription_id", flat=True)).values()) == {1}
    assert set(Subscription.objects.values_list("current_period_end", flat=True)) == {MAR_1}


def test_renewal_racing_agency_operations_charges_the_period_once():
    plan = PlanFactory(price_per_zipcode=Decimal("28.00"), max_zipcodes=5)
    agency = AgencyFactory()
    services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=JAN_1)
    feb_15 = datetime(2025, 2, 15, tzinfo=UTC)

    results = run_together(
        lambda: services.renew_subscriptions(now=feb_15),
        lambda: services.renew_subscriptions(now=feb_15),
        lambda: services.add_territory(agency=agency, zipcode="90210", now=feb_15),
        lambda: services.add_territory(agency=agency, zipcode="60601", now=feb_15),
    )

    assert not [result for result in results if isinstance(result, Exception)], results
    assert LedgerEntry.objects.filter(reason=EntryReason.RENEWAL).count() == 1
    assert LedgerEntry.objects.filter(reason=EntryReason.TERRITORY_ADDED).count() == 2
    assert LedgerEntry.objects.for_agency(agency).balance() == Decimal("28.00") * 2 + Decimal("14.00") * 2


def test_concurrent_additions_cannot_both_pass_the_plan_limit():
    plan = PlanFactory(max_zipcodes=2)
    agency = AgencyFactory()
    services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=JAN_1)
    zipcodes = ["90210", "60601", "94105", "33101"]

    results = run_together(
        *[
            lambda zipcode=zipcode: services.add_territory(agency=agency, zipcode=zipcode, now=JAN_1)
            for zipcode in zipcodes
        ]
    )

    assert sum(isinstance(result, Territory) for result in results) == 1
    assert sum(isinstance(result, DomainError) and result.status_code == 409 for result in results) == 3
    assert Territory.objects.count() == 2
    assert LedgerEntry.objects.filter(reason=EntryReason.TERRITORY_ADDED).count() == 1


def test_concurrent_subscribes_of_one_agency_make_one_subscription():
    plan = PlanFactory()
    agency = AgencyFactory()

    results = run_together(
        *[lambda: services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=JAN_1)] * 4
    )

    assert sum(isinstance(result, Subscription) for result in results) == 1
    assert sum(isinstance(result, DomainError) and result.status_code == 409 for result in results) == 3
    assert Subscription.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_subscribing_while_the_sweep_settles_the_old_subscription_neither_deadlocks_nor_fails():
    plan = PlanFactory(price_per_zipcode=Decimal("31.00"))
    renewing, lapsing = AgencyFactory.create_batch(4), AgencyFactory.create_batch(4)
    for agency in renewing + lapsing:
        services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=JAN_1)
    for agency in lapsing:
        services.cancel_subscription(agency=agency, now=JAN_1)
    later = datetime(2025, 2, 2, tzinfo=UTC)

    results = run_together(
        lambda: services.renew_subscriptions(now=later),
        *[
            lambda agency=agency: services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["90210"], now=later)
            for agency in renewing + lapsing
        ],
    )

    sweep, renewing_results, lapsing_results = results[0], results[1:5], results[5:]
    assert isinstance(sweep, services.RenewalSummary), sweep
    assert sweep.failed == 0
    assert all(isinstance(result, DomainError) and result.status_code == 409 for result in renewing_results), results
    assert all(isinstance(result, Subscription) for result in lapsing_results), results
    assert Subscription.objects.live().count() == 8
    # A refused subscribe rolls back the renewal it did first; the sweep may have skipped
    # that subscription meanwhile, so the next run renews it. Either way: once per period.
    services.renew_subscriptions(now=later)
    renewals = LedgerEntry.objects.filter(reason=EntryReason.RENEWAL)
    assert sorted(renewals.values_list("agency_id", flat=True)) == sorted(agency.pk for agency in renewing)
