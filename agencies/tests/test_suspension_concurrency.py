"""Suspension racing distribution: real PostgreSQL transactions in real threads.

Whichever commits first, once the suspension has committed no live offer to the
suspended agency is left and none is made.
"""

import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from agencies import services
from agencies.models import AgencyStatus
from agencies.tests.factories import StaffUserFactory
from leads import distribution
from leads.models import Offer, OfferStatus
from leads.tests.factories import LeadFactory, distribute_lead, subscribed_agency

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 20


class Paused:
    """Wraps a function so that, in the thread named `thread`, it stops at `point` until released."""

    def __init__(self, function, *, thread: str, after: bool = True, when=lambda *a, **kw: True):
        self.function, self.thread, self.after, self.when = function, thread, after, when
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        pause = threading.current_thread().name == self.thread and self.when(*args, **kwargs)
        if pause and not self.after:
            self.reached.set()
            assert self.go.wait(TIMEOUT)
        result = self.function(*args, **kwargs)
        if pause and self.after:
            self.reached.set()
            assert self.go.wait(TIMEOUT)
        return result


def run_in_thread(name: str, job) -> tuple[threading.Thread, list]:
    errors = []

    def target():
        try:
            job()
        except Exception as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread, errors


def wait_until_someone_waits_for_a_lock():
    deadline = time.monotonic() + TIMEOUT
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("nobody waited for a lock")


def suspend(agency, actor):
    return lambda: services.set_agency_status(
        agency_id=agency.pk, status=AgencyStatus.SUSPENDED, actor=actor, now=timezone.now()
    )


def distribute(lead):
    return lambda: distribute_lead(lead_id=lead.pk, now=timezone.now())


def test_an_offer_made_while_the_suspension_waits_is_moved_on(monkeypatch):
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    lead, actor = LeadFactory(), StaffUserFactory()
    paused = Paused(distribution.lock_candidates, thread="distribution")
    monkeypatch.setattr(distribution, "lock_candidates", paused)

    distributing, distribution_errors = run_in_thread("distribution", distribute(lead))
    assert paused.reached.wait(TIMEOUT)  # it holds the agencies' rows, read as active
    suspending, suspension_errors = run_in_thread("suspension", suspend(first, actor))
    wait_until_someone_waits_for_a_lock()  # the suspension waits for the distribution
    paused.go.set()
    distributing.join(TIMEOUT)
    suspending.join(TIMEOUT)

    assert distribution_errors == suspension_errors == []
    assert Offer.objects.get(lead=lead, agency=first).status == OfferStatus.WITHDRAWN
    assert Offer.objects.live().get(lead=lead).agency_id == second.pk
    assert not Offer.objects.live().filter(agency=first).exists()


def test_a_distribution_waiting_for_the_suspension_skips_the_agency(monkeypatch):
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    lead, actor = LeadFactory(), StaffUserFactory()
    paused = Paused(
        services.record_action, thread="suspension", when=lambda **kwargs: kwargs["action"] == "agency.suspended"
    )
    monkeypatch.setattr(services, "record_action", paused)

    suspending, suspension_errors = run_in_thread("suspension", suspend(first, actor))
    assert paused.reached.wait(TIMEOUT)  # status changed, not committed yet, agency row locked
    distributing, distribution_errors = run_in_thread("distribution", distribute(lead))
    wait_until_someone_waits_for_a_lock()  # the distribution waits for the agency row
    paused.go.set()
    suspending.join(TIMEOUT)
    distributing.join(TIMEOUT)

    assert distribution_errors == suspension_errors == []
    offer = Offer.objects.get(lead=lead)
    assert offer.agency_id == second.pk
    assert offer.decision["skipped"] == {str(first.pk): "suspended"}
    assert not Offer.objects.filter(agency=first).exists()


def test_a_territory_removal_racing_a_distribution_neither_deadlocks_nor_offers_the_removed_zipcode(monkeypatch):
    """The removal locks its subscription, then deletes the territory; a distribution that
    read the territory first and then waited for the subscription would deadlock with it."""
    from subscriptions import services as subscription_services

    leaving, staying = subscribed_agency("10001", "10002"), subscribed_agency("10001")
    lead = LeadFactory(zipcode="10001")
    paused = Paused(subscription_services._lock_live_subscription, thread="removal")
    monkeypatch.setattr(subscription_services, "_lock_live_subscription", paused)

    def remove():
        subscription_services.remove_territory(agency=leaving, zipcode="10001", now=timezone.now())

    removing, removal_errors = run_in_thread("removal", remove)
    assert paused.reached.wait(TIMEOUT)  # it holds the subscription
    distributing, distribution_errors = run_in_thread("distribution", distribute(lead))
    wait_until_someone_waits_for_a_lock()  # the distribution waits for the subscription
    paused.go.set()
    removing.join(TIMEOUT)
    distributing.join(TIMEOUT)

    assert removal_errors == distribution_errors == []
    assert Offer.objects.get(lead=lead).agency_id == staying.pk
