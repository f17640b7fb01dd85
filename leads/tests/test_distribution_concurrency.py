"""Distribution under real concurrency: real PostgreSQL transactions from real threads."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from leadmarket.celery import app as celery_app
from leads import distribution
from leads.models import Lead, Offer, RotationCursor
from leads.tests.factories import LeadFactory, PortalFactory, distribute_lead, subscribed_agency
from portals.tests.factories import make_portal
from subscriptions import services as subscription_services

pytestmark = pytest.mark.django_db(transaction=True)


def in_threads(jobs, workers: int = 8):
    """Runs the callables concurrently; each thread closes its own database connection."""

    def run(job):
        try:
            return job()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, jobs))


@pytest.fixture
def inline_tasks():
    """Run the hand-off task in the request thread, so webhooks distribute concurrently."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_a_thousand_concurrent_webhooks_for_one_zipcode_balance_seven_agencies(inline_tasks):
    agencies = [subscribed_agency("10001") for _ in range(7)]
    _, key = make_portal("burst", rate_limit="100000/m")

    def post(n):
        return lambda: (
            APIClient()
            .post(
                "/api/webhooks/burst",
                {
                    "external_id": f"b-{n}",
                    "first_name": "A",
                    "last_name": f"L{n}",
                    "email": f"l{n}@example.com",
                    "zipcode": "10001",
                },
                format="json",
                HTTP_X_API_KEY=key,
            )
            .status_code
        )

    statuses = in_threads([post(n) for n in range(1000)], workers=12)

    assert Counter(statuses) == {201: 1000}
    assert Lead.objects.count() == 1000
    assert Offer.objects.count() == 1000
    assert Offer.objects.values("lead").distinct().count() == 1000
    counts = Counter(Offer.objects.values_list("agency_id", flat=True))
    assert sorted(counts.values()) == [142, 143, 143, 143, 143, 143, 143]
    assert set(counts) == {agency.id for agency in agencies}


def test_interleaved_zipcodes_each_stay_balanced():
    zipcodes = ["10001", "10002", "10003", "10004", "10005", "90210", "60601", "94105", "02108", "33101"]
    for zipcode in zipcodes:
        for _ in range(3):
            subscribed_agency(zipcode)
    leads = [LeadFactory(zipcode=zipcodes[n % 10], portal=PortalFactory()) for n in range(300)]

    in_threads([lambda lead=lead: distribute_lead(lead_id=lead.pk, now=timezone.now()) for lead in leads])

    for zipcode in zipcodes:
        counts = Counter(Offer.objects.filter(lead__zipcode=zipcode).values_list("agency_id", flat=True))
        assert sorted(counts.values()) == [10, 10, 10], zipcode


def test_first_leads_of_an_unseen_zipcode_arriving_together_make_one_cursor():
    for _ in range(3):
        subscribed_agency("94105")
    leads = LeadFactory.create_batch(30, zipcode="94105")

    in_threads([lambda lead=lead: distribute_lead(lead_id=lead.pk, now=timezone.now()) for lead in leads])

    assert RotationCursor.objects.filter(zipcode="94105").count() == 1
    assert Offer.objects.count() == 30
    assert sorted(Counter(Offer.objects.values_list("agency_id", flat=True)).values()) == [10, 10, 10]


def test_distribute_called_ten_times_at_once_makes_one_offer():
    for _ in range(3):
        subscribed_agency("10001")
    lead = LeadFactory()

    in_threads([lambda: distribute_lead(lead_id=lead.pk, now=timezone.now())] * 10, workers=10)

    assert Offer.objects.filter(lead=lead).count() == 1


def test_no_offer_reaches_an_agency_after_its_unsubscribe_commits():
    leaving = subscribed_agency("10001")
    for _ in range(2):
        subscribed_agency("10001")
    leads = LeadFactory.create_batch(200)
    after_cancel: dict = {}
    halfway = threading.Event()

    def distribute(index, lead):
        def job():
            distribute_lead(lead_id=lead.pk, now=timezone.now())
            if index == 100:
                halfway.set()

        return job

    def cancel():
        halfway.wait(timeout=30)
        subscription_services.cancel_subscription(agency=leaving, immediate=True, now=timezone.now())
        after_cancel["offers"] = set(Offer.objects.filter(agency=leaving).values_list("id", flat=True))

    in_threads([cancel, *(distribute(i, lead) for i, lead in enumerate(leads))], workers=6)

    assert after_cancel["offers"], "the agency should have received offers before it left"
    assert set(Offer.objects.filter(agency=leaving).values_list("id", flat=True)) == after_cancel["offers"]
    assert Offer.objects.count() == 200


def test_concurrent_redistribution_runs_offer_each_lead_once():
    for zipcode in ("10001", "10002"):
        for _ in range(2):
            subscribed_agency(zipcode)
    leads = [LeadFactory(zipcode=("10001", "10002")[n % 2], status="unassigned") for n in range(200)]

    in_threads([lambda: distribution.redistribute_leads(now=timezone.now())] * 4, workers=4)

    assert Offer.objects.count() == len(leads)
    assert Offer.objects.values("lead").distinct().count() == len(leads)


def test_redistribution_parts_share_no_rotation_cursor():
    zipcodes = [f"100{n:02d}" for n in range(1, 13)]
    for _ in range(2):
        subscribed_agency(*zipcodes)
    leads = [LeadFactory(zipcode=zipcode, status="unassigned") for zipcode in zipcodes for _ in range(5)]
    part_zero = [zipcode for zipcode in zipcodes if distribution.zip_part(zipcode, 2) == 0]
    holding, release = threading.Event(), threading.Event()

    def hold_part_zero():  # a run of part 0 in the middle of its batch
        with transaction.atomic():
            distribution.lock_cursors(part_zero)
            holding.set()
            release.wait(30)

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(lambda: in_threads([hold_part_zero], workers=1))
        assert holding.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # waiting on part 0's locks would fail here
        try:
            second = distribution.redistribute_leads(now=timezone.now(), partition=(1, 2))
        finally:
            release.set()
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        held.result()
    first = distribution.redistribute_leads(now=timezone.now(), partition=(0, 2))

    assert first.offered == 5 * len(part_zero)
    assert second.offered == len(leads) - first.offered
    assert Offer.objects.values("lead").distinct().count() == Offer.objects.count() == len(leads)


def test_concurrent_runs_over_new_leads_offer_each_lead_once_in_balance():
    agencies = [subscribed_agency("10001") for _ in range(3)]
    leads = LeadFactory.create_batch(100, zipcode="10001")

    def run():
        return distribution.distribute_new_leads(batch_size=7)

    in_threads([run] * 4, workers=4)

    assert Offer.objects.count() == len(leads)
    assert Offer.objects.values("lead").distinct().count() == len(leads)
    counts = Counter(Offer.objects.values_list("agency_id", flat=True))
    assert sorted(counts.values()) == [33, 33, 34]
    assert set(counts) == {agency.id for agency in agencies}


@pytest.mark.parametrize("cap", [None, 100])
def test_a_busy_zipcode_does_not_hold_up_the_others(cap):
    """A shared agency: a 10001 distribution holding its locks does not block one in 90210
    (an uncapped plan), and with a capped plan the 90210 one only waits for the cap."""
    subscribed_agency("10001", "90210", cap=cap)
    busy, other = LeadFactory(zipcode="10001"), LeadFactory(zipcode="90210")
    locked, release = threading.Event(), threading.Event()

    def hold_the_busy_zipcode():
        from django.db import transaction

        with transaction.atomic():
            distribution.lock_cursors(["10001"])
            distribution.lock_candidates(["10001"], now=timezone.now())
            locked.set()
            release.wait(timeout=30 if cap is None else 2)
        distribute_lead(lead_id=busy.pk, now=timezone.now())

    def distribute_elsewhere():
        locked.wait(timeout=30)
        started = timezone.now()
        distribute_lead(lead_id=other.pk, now=timezone.now())
        elapsed = (timezone.now() - started).total_seconds()
        release.set()
        return elapsed

    _, elapsed = in_threads([hold_the_busy_zipcode, distribute_elsewhere], workers=2)

    if cap is None:
        assert elapsed < 20  # blocked, it would wait out the holder's 30 s timeout
    else:
        assert elapsed >= 1.5  # the capped subscription's count is taken in turn
    assert Offer.objects.filter(lead=other).exists()
    assert Offer.objects.filter(lead=busy).exists()
