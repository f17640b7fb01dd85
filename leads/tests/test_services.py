from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from leads import distribution, services
from leads.models import Lead, LeadStatus, Offer
from leads.standard import normalize_lead
from portals.tests.factories import make_portal

pytestmark = pytest.mark.django_db

VALUES = {"email": "ada@example.com", "zipcode": "10001"}


def store(portal, **overrides):
    values = normalize_lead(VALUES | overrides)
    return services.create_lead(portal=portal, values=values, idempotency_key="", now=timezone.now())


def test_distribute_lead_without_agencies_makes_the_lead_unassigned_once():
    portal, _ = make_portal()
    lead = store(portal)
    now = timezone.now()

    distribution.distribute_lead(lead_id=lead.pk, now=now)
    distribution.distribute_lead(lead_id=lead.pk, now=now)  # a task delivered twice

    lead.refresh_from_db()
    assert lead.status == LeadStatus.UNASSIGNED
    assert not Offer.objects.exists()


def test_distribute_lead_leaves_duplicates_test_leads_and_unknown_ids_alone():
    portal, _ = make_portal()
    original = store(portal)
    duplicate = store(portal, external_id="2")
    test = store(portal, external_id="3", is_test=True)

    for lead in (duplicate, test):
        distribution.distribute_lead(lead_id=lead.pk, now=timezone.now())
    assert distribution.distribute_lead(lead_id=10**9, now=timezone.now()) is None

    assert duplicate.duplicate_of == original
    assert set(Lead.objects.values_list("status", flat=True)) == {"new", "duplicate", "test"}


def test_sweeper_hands_off_only_new_leads_older_than_the_threshold(monkeypatch):
    portal, _ = make_portal()
    old = store(portal)
    Lead.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(minutes=10))
    store(portal, email="fresh@example.com")
    store(portal, email="test@example.com", is_test=True)
    queued = []
    monkeypatch.setattr("leads.tasks.distribute_lead.apply_async", lambda **kwargs: queued.append(kwargs["kwargs"]))

    handed = services.sweep_pending_leads(now=timezone.now(), older_than=timedelta(minutes=2))

    assert handed == [old.pk]
    assert queued == [{"lead_id": old.pk}]


def test_sweep_leads_command_can_distribute_inline():
    portal, _ = make_portal()
    lead = store(portal)
    out = StringIO()

    call_command("sweep_leads", "--older-than", "0", "--inline", stdout=out)

    lead.refresh_from_db()
    assert lead.status == LeadStatus.UNASSIGNED
    assert "Handed off 1" in out.getvalue()


def test_the_sweeper_is_scheduled():
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-pending-leads"]

    assert entry["task"] == "leads.tasks.sweep_pending_leads"


def test_normalize_lead_fills_city_and_state_and_formats_phone():
    lead = normalize_lead({"phone": "212 555 0100", "zipcode": "10001-1234", "email": "A@EXAMPLE.COM"})

    assert (lead["phone"], lead["zipcode"], lead["city"], lead["state"]) == ("+12125550100", "10001", "New York", "NY")
    assert lead["email"] == "A@example.com"


def test_demo_data_creates_the_demo_portal_idempotently_with_a_fresh_key(api_client):
    first, second = StringIO(), StringIO()

    call_command("demo_data", stdout=first)
    call_command("demo_data", stdout=second)

    from portals.models import Portal, PortalKey

    portal = Portal.objects.get(code="demo")
    assert PortalKey.objects.filter(portal=portal, revoked_at__isnull=True).count() == 1
    key = second.getvalue().split("API key ")[1].split()[0]
    assert key not in first.getvalue()
    assert "curl -s -X POST http://127.0.0.1:8000/api/webhooks/demo" in second.getvalue()
    from portals.selectors import forget_all_portals
    from portals.tests.helpers import LEAD, post_json

    forget_all_portals()
    assert post_json(api_client, "demo", LEAD, key).status_code == 201
