"""Renewal from Celery beat and the command line, the demo plans and the schema."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from leadmarket.celery import app
from subscriptions import services, tasks
from subscriptions.models import EntryReason, LedgerEntry, Plan, Subscription

from .factories import PlanFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def due_subscription(agency):
    """A subscription whose period ended an hour ago."""
    started = timezone.now() - timedelta(days=40)
    plan = PlanFactory(price_per_zipcode=Decimal("30.00"))
    return services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=started)


def test_the_renewal_task_renews_due_subscriptions(due_subscription):
    result = tasks.renew_subscriptions()

    assert result == {"renewed": 1, "expired": 0, "failed": 0}
    assert LedgerEntry.objects.filter(reason=EntryReason.RENEWAL).count() == 1
    assert Subscription.objects.get().current_period_end > timezone.now()


def test_beat_runs_the_renewal_task_and_the_task_is_registered():
    entry = settings.CELERY_BEAT_SCHEDULE["renew-subscriptions"]

    assert entry["task"] == "subscriptions.renew_subscriptions"
    assert entry["task"] in app.tasks


def test_the_command_renews_and_is_idempotent(due_subscription):
    first, second = StringIO(), StringIO()

    call_command("renew_subscriptions", stdout=first)
    call_command("renew_subscriptions", stdout=second)

    assert "Renewed 1, expired 0, failed 0." in first.getvalue()
    assert "Renewed 0, expired 0, failed 0." in second.getvalue()
    assert LedgerEntry.objects.filter(reason=EntryReason.RENEWAL).count() == 1


def test_the_command_fails_when_a_subscription_fails(due_subscription, monkeypatch):
    def broken(subscription, *, now):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "_settle_period", broken)

    with pytest.raises(CommandError, match="1 subscription"):
        call_command("renew_subscriptions", stdout=StringIO())


def test_demo_data_creates_the_demo_plans_once():
    call_command("demo_data", stdout=StringIO())
    call_command("demo_data", stdout=StringIO())

    assert list(Plan.objects.in_display_order().values_list("name", flat=True)) == ["Starter", "Growth", "Pro"]
    assert Plan.objects.get(name="Pro").monthly_lead_cap is None


def test_the_schema_describes_the_subscription_endpoints(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    paths = response.json()["paths"]
    for path in (
        "/api/mobile/subscription/plans",
        "/api/mobile/subscription/subscribe",
        "/api/mobile/territories/{zipcode}",
        "/api/mobile/billing/history",
        "/api/admin/subscriptions/plans/{plan_id}",
    ):
        assert path in paths
    assert set(paths["/api/mobile/subscription/subscribe"]["post"]["responses"]) >= {"201", "400", "401", "409"}
