"""Real transactions and threads: racing re-sends, and a broker outage during a post."""

import threading

import kombu.pools
import pytest
from django.db import connection
from kombu.exceptions import OperationalError as BrokerDown
from rest_framework.test import APIClient

from leads.models import Lead, LeadStatus
from leads.tasks import distribute_new_leads as distribute_task
from portals.models import Reception
from portals.tests.factories import make_portal
from portals.tests.helpers import LEAD, post_json

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_simultaneous_identical_posts_make_one_lead():
    _, key = make_portal("race")
    barrier = threading.Barrier(20)
    results = []

    def send():
        try:
            barrier.wait()
            response = post_json(APIClient(raise_request_exception=False), "race", LEAD, key)
            results.append((response.status_code, response.json()["data"]["lead_id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 20
    assert Lead.objects.count() == 1
    lead_id = Lead.objects.get().pk
    assert {lead for _, lead in results} == {lead_id}
    assert sorted(status for status, _ in results) == [201] * 20
    assert Reception.objects.filter(outcome="duplicate_resent").count() == 19


def _post_together(bodies: list[dict], key: str) -> list[int]:
    barrier = threading.Barrier(len(bodies))
    statuses = []

    def send(body):
        try:
            barrier.wait()
            statuses.append(post_json(APIClient(raise_request_exception=False), "race", body, key).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("shared", ["phone", "email"])
def test_simultaneous_leads_sharing_a_contact_make_one_original(shared):
    _, key = make_portal("race")
    # Twelve different leads of one ZIP code that share only their phone (or only their
    # email): exactly one is the original, the others its duplicates.
    other = "email" if shared == "phone" else "phone"
    bodies = [
        LEAD | {"external_id": f"e{n}", other: f"{n}@example.com" if other == "email" else f"(212) 555-01{n:02d}"}
        for n in range(12)
    ]

    statuses = _post_together(bodies, key)

    assert sorted(statuses) == [201] * 12
    original = Lead.objects.get(status=LeadStatus.NEW)
    duplicates = Lead.objects.filter(status=LeadStatus.DUPLICATE)
    assert duplicates.count() == 11
    assert set(duplicates.values_list("duplicate_of_id", flat=True)) == {original.pk}


def test_simultaneous_posts_with_one_idempotency_key_make_one_lead():
    _, key = make_portal("race")
    barrier = threading.Barrier(10)
    statuses = []

    def send(number):
        try:
            barrier.wait()
            body = LEAD | {"external_id": f"differs-{number}"}
            response = post_json(APIClient(raise_request_exception=False), "race", body, key, HTTP_IDEMPOTENCY_KEY="k1")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(number,)) for number in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] * 10
    assert Lead.objects.count() == 1


def test_broker_down_during_a_post_still_stores_the_lead_and_the_catch_up_run_offers_it(monkeypatch):
    _, key = make_portal("outage")

    def broker_down(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(distribute_task, "apply_async", broker_down)

    response = post_json(APIClient(raise_request_exception=False), "outage", LEAD, key)

    assert response.status_code == 201
    lead = Lead.objects.get(pk=response.json()["data"]["lead_id"])
    assert lead.status == LeadStatus.NEW

    monkeypatch.undo()
    assert distribute_task.run() == 1  # what beat runs every 30 s
    lead.refresh_from_db()
    assert lead.status == LeadStatus.UNASSIGNED


def test_a_real_unreachable_broker_does_not_fail_the_webhook(caplog):
    from leadmarket.celery import app

    _, key = make_portal("outage")
    original = app.conf.broker_url

    def connect_to(url):
        # kombu keeps connection and producer pools per broker URL, process-wide; the app
        # caches its own on first use. All are rebuilt for `url`.
        app.conf.broker_url = url
        kombu.pools.reset()
        app._pool = app.amqp._producer_pool = None

    connect_to("redis://127.0.0.1:1/0")
    try:
        response = post_json(APIClient(raise_request_exception=False), "outage", LEAD, key)
    finally:
        connect_to(original)

    assert response.status_code == 201
    assert Lead.objects.get().status == LeadStatus.NEW
    assert "could not enqueue leads.tasks.distribute_new_leads" in caplog.text
