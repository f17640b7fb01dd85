"""The Django admin pages of plans, subscriptions and the ledger."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agencies.tests.factories import StaffUserFactory
from audit.models import AuditLog
from subscriptions import services
from subscriptions.models import LedgerEntry, Plan, Subscription, SubscriptionStatus

from .factories import PlanFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(StaffUserFactory(is_superuser=True))
    return client


@pytest.fixture
def subscription(agency):
    plan = PlanFactory(price_per_zipcode=Decimal("30.00"))
    return services.subscribe(
        agency=agency, plan_id=plan.pk, zipcodes=["10001", "90210"], now=timezone.now() - timedelta(days=3)
    )


@pytest.mark.parametrize("model", ["plan", "subscription", "ledgerentry"])
def test_changelists_load_with_search(admin_client, subscription, model):
    assert admin_client.get(f"/admin/subscriptions/{model}/").status_code == 200
    assert admin_client.get(f"/admin/subscriptions/{model}/", {"q": "10001"}).status_code == 200


def test_a_subscription_page_shows_its_territories_read_only(admin_client, subscription):
    response = admin_client.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/")

    assert response.status_code == 200
    assert b"Beverly Hills" in response.content
    assert b'name="_save"' not in response.content


def test_ledger_entries_cannot_be_added_changed_or_deleted_in_the_admin(admin_client, subscription):
    entry = LedgerEntry.objects.first()

    assert admin_client.get("/admin/subscriptions/ledgerentry/add/").status_code == 403
    assert admin_client.get(f"/admin/subscriptions/ledgerentry/{entry.pk}/delete/").status_code == 403
    page = admin_client.get(f"/admin/subscriptions/ledgerentry/{entry.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_creating_a_plan_in_the_admin_goes_through_the_service(admin_client):
    response = admin_client.post(
        "/admin/subscriptions/plan/add/",
        {
            "name": "Admin plan",
            "description": "",
            "price_per_zipcode": "12.00",
            "base_price": "0.00",
            "max_zipcodes": "4",
            "monthly_lead_cap": "",
            "is_active": "on",
            "display_order": "0",
        },
    )

    assert response.status_code == 302, response.content
    plan = Plan.objects.get(name="Admin plan")
    assert AuditLog.objects.filter(action="plan.created", object_id=str(plan.pk)).exists()


def test_the_cancel_now_action_credits_through_the_service(admin_client, subscription):
    response = admin_client.post(
        "/admin/subscriptions/subscription/",
        {"action": "cancel_now_action", "_selected_action": [subscription.pk]},
    )

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.CANCELLED
    assert LedgerEntry.objects.filter(reason="cancelled").exists()
    assert AuditLog.objects.get(action="subscription.cancelled").actor.is_superuser
    assert Subscription.objects.live().count() == 0
