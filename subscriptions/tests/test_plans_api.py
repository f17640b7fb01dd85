"""The public plan catalogue (and its cache) and the staff plan endpoints."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agencies.authentication import Realm
from agencies.tests.factories import StaffUserFactory
from audit.models import AuditLog
from conftest import assert_failure, assert_success, client_for
from subscriptions import services
from subscriptions.models import Plan

from .factories import PlanFactory

pytestmark = pytest.mark.django_db

CATALOGUE = "/api/mobile/subscription/plans"
PLANS = "/api/admin/subscriptions/plans"


def plan_url(plan_id) -> str:
    return f"{PLANS}/{plan_id}"


def new_plan(**overrides) -> dict:
    return {"name": "Metro", "price_per_zipcode": "35.50", "max_zipcodes": 8, "monthly_lead_cap": 40} | overrides


# --- Catalogue ----------------------------------------------------------------------------


def test_catalogue_is_public_and_lists_active_plans_in_display_order(api_client):
    PlanFactory(name="Second", display_order=2, price_per_zipcode=Decimal("20.00"))
    PlanFactory(name="First", display_order=1, base_price=Decimal("49.00"), monthly_lead_cap=None)
    PlanFactory(name="Hidden", display_order=0, is_active=False)

    data = assert_success(api_client.get(CATALOGUE), 200)

    assert [plan["name"] for plan in data] == ["First", "Second"]
    first = data[0]
    assert {"id", "name", "price_per_zipcode", "max_zipcodes", "monthly_lead_cap", "is_active"} <= set(first)
    assert (first["base_price"], first["price_per_zipcode"], first["monthly_lead_cap"]) == ("49.00", "10.00", None)
    assert data[1]["price_per_zipcode"] == "20.00"


def test_catalogue_is_served_from_the_cache(api_client):
    PlanFactory(name="Cached")
    assert_success(api_client.get(CATALOGUE), 200)

    with CaptureQueriesContext(connection) as queries:
        data = assert_success(api_client.get(CATALOGUE), 200)

    assert len(queries) == 0
    assert [plan["name"] for plan in data] == ["Cached"]


def test_catalogue_is_refreshed_after_a_plan_change(api_client, plan_staff_client, django_capture_on_commit_callbacks):
    plan = PlanFactory(name="Old name")
    assert_success(api_client.get(CATALOGUE), 200)

    with django_capture_on_commit_callbacks(execute=True):
        assert_success(plan_staff_client.put(plan_url(plan.pk), {"name": "New name"}), 200)
    renamed = assert_success(api_client.get(CATALOGUE), 200)
    with django_capture_on_commit_callbacks(execute=True):
        assert_success(plan_staff_client.post(PLANS, new_plan()), 201)
    added = assert_success(api_client.get(CATALOGUE), 200)
    with django_capture_on_commit_callbacks(execute=True):
        assert_success(plan_staff_client.delete(plan_url(plan.pk)), 200)
    removed = assert_success(api_client.get(CATALOGUE), 200)

    assert [p["name"] for p in renamed] == ["New name"]
    assert sorted(p["name"] for p in added) == ["Metro", "New name"]
    assert [p["name"] for p in removed] == ["Metro"]


def test_catalogue_keeps_serving_when_the_cache_is_down(api_client, monkeypatch):
    PlanFactory(name="Resilient")

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)
    monkeypatch.setattr(cache, "add", down)

    data = assert_success(api_client.get(CATALOGUE), 200)
    services.create_plan(actor=None, fields={"name": "Later", "price_per_zipcode": Decimal("1"), "max_zipcodes": 1})

    assert [plan["name"] for plan in data] == ["Resilient"]
    assert len(assert_success(api_client.get(CATALOGUE), 200)) == 2


def test_catalogue_query_count_does_not_grow_with_plans(api_client):
    PlanFactory()
    with CaptureQueriesContext(connection) as one:
        api_client.get(CATALOGUE)
    cache.clear()
    PlanFactory.create_batch(10)

    with CaptureQueriesContext(connection) as eleven:
        api_client.get(CATALOGUE)

    assert len(eleven) == len(one) == 1


# --- Staff: list, create, update ----------------------------------------------------------


def test_staff_list_every_plan_with_live_subscriptions(plan_staff_client, agency):
    plan = PlanFactory(name="Used")
    PlanFactory(name="Unused", is_active=False)
    services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=datetime(2025, 1, 1, tzinfo=UTC))

    data = assert_success(plan_staff_client.get(PLANS), 200)

    assert data["count"] == 2
    counts = {row["name"]: row["live_subscriptions"] for row in data["results"]}
    assert counts == {"Used": 1, "Unused": 0}


def test_staff_can_filter_plans_by_active(plan_staff_client):
    PlanFactory(name="On")
    PlanFactory(name="Off", is_active=False)

    data = assert_success(plan_staff_client.get(PLANS, {"is_active": "false"}), 200)

    assert [row["name"] for row in data["results"]] == ["Off"]


def test_staff_create_a_plan(plan_staff_client):
    data = assert_success(plan_staff_client.post(PLANS, new_plan(base_price="10.00")), 201)

    plan = Plan.objects.get(pk=data["id"])
    assert (plan.price_per_zipcode, plan.base_price, plan.max_zipcodes) == (Decimal("35.50"), Decimal("10.00"), 8)
    assert data["price_per_zipcode"] == "35.50"
    assert data["live_subscriptions"] == 0
    assert AuditLog.objects.filter(action="plan.created", object_id=str(plan.pk)).exists()


def test_staff_update_only_the_fields_sent(plan_staff_client):
    plan = PlanFactory(name="Keep", max_zipcodes=3)

    data = assert_success(plan_staff_client.put(plan_url(plan.pk), {"max_zipcodes": 5}), 200)

    assert (data["name"], data["max_zipcodes"]) == ("Keep", 5)
    assert AuditLog.objects.get(action="plan.updated").changes == {"max_zipcodes": {"before": 3, "after": 5}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"price_per_zipcode": "-1.00"}, "price_per_zipcode"),
        ({"price_per_zipcode": "1.005"}, "price_per_zipcode"),
        ({"price_per_zipcode": "ten"}, "price_per_zipcode"),
        ({"price_per_zipcode": "12345678901.00"}, "price_per_zipcode"),
        ({"base_price": "-0.01"}, "base_price"),
        ({"max_zipcodes": 0}, "max_zipcodes"),
        ({"monthly_lead_cap": 0}, "monthly_lead_cap"),
        ({"display_order": -1}, "display_order"),
        ({"is_active": "perhaps"}, "is_active"),
        ({"id": 5}, "id"),
    ],
)
def test_bad_plan_input_is_400_on_the_field(plan_staff_client, body, field):
    plan = PlanFactory()

    created = assert_failure(plan_staff_client.post(PLANS, new_plan(**body), format="json"), 400)
    updated = assert_failure(plan_staff_client.put(plan_url(plan.pk), body, format="json"), 400)

    assert field in created["errors"]
    assert field in updated["errors"]
    assert Plan.objects.count() == 1


def test_create_needs_the_required_fields(plan_staff_client):
    errors = assert_failure(plan_staff_client.post(PLANS, {}), 400)["errors"]

    assert set(errors) == {"name", "price_per_zipcode", "max_zipcodes"}


def test_a_duplicate_plan_name_is_400_on_name(plan_staff_client):
    PlanFactory(name="Taken")

    assert "name" in assert_failure(plan_staff_client.post(PLANS, new_plan(name="Taken")), 400)["errors"]


def test_unknown_plan_is_404(plan_staff_client):
    assert_failure(plan_staff_client.get(plan_url(999999)), 404)
    assert_failure(plan_staff_client.put(plan_url(999999), {"max_zipcodes": 2}), 404)
    assert_failure(plan_staff_client.delete(plan_url(999999)), 404)


# --- Staff: delete ------------------------------------------------------------------------


def test_deleting_an_unused_plan_deletes_it(plan_staff_client):
    plan = PlanFactory()

    body = plan_staff_client.delete(plan_url(plan.pk)).json()

    assert body["success"] is True
    assert body["data"] == {"deleted": True, "plan": None}
    assert body["message"] == "Plan deleted."
    assert not Plan.objects.exists()


def test_deleting_a_plan_with_live_subscribers_deactivates_it_and_says_so(plan_staff_client, agency):
    plan = PlanFactory()
    services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=datetime(2025, 1, 1, tzinfo=UTC))

    response = plan_staff_client.delete(plan_url(plan.pk))

    data = assert_success(response, 200)
    assert data["deleted"] is False
    assert data["plan"]["is_active"] is False
    assert data["plan"]["live_subscriptions"] == 1
    assert "deactivated instead of deleted" in response.json()["message"]
    assert agency.subscriptions.get().status == "active"
    assert assert_success(plan_staff_client.get(PLANS), 200)["count"] == 1


# --- Staff: permissions -------------------------------------------------------------------


def test_agency_tokens_are_refused_on_staff_plan_endpoints(agency_client):
    assert_failure(agency_client.get(PLANS), 401)
    assert_failure(agency_client.post(PLANS, new_plan()), 401)


@pytest.mark.parametrize(
    ("method", "permission"),
    [("get", "view_plan"), ("post", "add_plan"), ("put", "change_plan"), ("delete", "delete_plan")],
)
def test_each_staff_method_needs_its_plan_permission(method, permission):
    plan = PlanFactory()
    user = StaffUserFactory()
    client = client_for(user, Realm.STAFF)
    path = PLANS if method in ("get", "post") else plan_url(plan.pk)
    body = new_plan() if method == "post" else {"max_zipcodes": 4}

    refused = getattr(client, method)(path, body, format="json")
    user.user_permissions.add(Permission.objects.get(codename=permission, content_type__app_label="subscriptions"))
    allowed = getattr(client, method)(path, body, format="json")

    assert_failure(refused, 403)
    assert allowed.status_code in (200, 201), allowed.content


def test_superusers_have_every_plan_permission():
    client = client_for(StaffUserFactory(is_superuser=True), Realm.STAFF)

    assert_success(client.post(PLANS, new_plan()), 201)


def test_staff_plan_list_query_count_does_not_grow(plan_staff_client, agency):
    plan = PlanFactory()
    services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=datetime(2025, 1, 1, tzinfo=UTC))
    with CaptureQueriesContext(connection) as few:
        plan_staff_client.get(PLANS)
    PlanFactory.create_batch(10)

    with CaptureQueriesContext(connection) as many:
        plan_staff_client.get(PLANS)

    assert len(many) == len(few)
