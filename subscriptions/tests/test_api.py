"""The mobile subscription, territory and billing endpoints through HTTP."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agencies.authentication import Realm
from agencies.tests.factories import AgencyFactory
from audit.models import AuditLog
from conftest import assert_failure, assert_success, client_for
from subscriptions import services
from subscriptions.models import LedgerEntry, Subscription, SubscriptionStatus, Territory

from .factories import PlanFactory

pytestmark = pytest.mark.django_db

STATUS = "/api/mobile/subscription/status"
SUBSCRIBE = "/api/mobile/subscription/subscribe"
UPGRADE = "/api/mobile/subscription/upgrade"
CANCEL = "/api/mobile/subscription/cancel"
TERRITORIES = "/api/mobile/territories"
HISTORY = "/api/mobile/billing/history"
MONEY = re.compile(r"^-?\d+\.\d{2}$")

ZIPS = ["10001", "90210", "60601", "94105", "33101", "98101", "80202", "30301", "77001", "02108"]


@pytest.fixture
def plan():
    return PlanFactory(name="Growth", base_price=Decimal("49.00"), price_per_zipcode=Decimal("24.00"), max_zipcodes=3)


@pytest.fixture
def subscribed(agency_client, plan):
    assert_success(agency_client.post(SUBSCRIBE, {"plan_id": plan.pk, "zipcodes": ["10001", "90210"]}), 201)
    return agency_client


def other_agency_with_history(plan):
    """Another agency with a subscription, territories and ledger entries."""
    other = AgencyFactory()
    now = datetime(2025, 1, 1, tzinfo=UTC)
    services.subscribe(agency=other, plan_id=plan.pk, zipcodes=["60601"], now=now)
    services.add_territory(agency=other, zipcode="94105", now=now)
    return other


# --- Status and subscribe -----------------------------------------------------------------


def test_status_is_null_without_a_subscription(agency_client):
    assert assert_success(agency_client.get(STATUS), 200) is None


def test_subscribe_returns_the_subscription_with_its_prices_as_strings(agency_client, plan):
    data = assert_success(agency_client.post(SUBSCRIBE, {"plan_id": plan.pk, "zipcodes": ["90210", "10001"]}), 201)

    assert data["status"] == "active"
    assert data["plan"]["id"] == plan.pk
    assert data["plan"]["price_per_zipcode"] == "24.00"
    assert data["zipcodes"] == ["10001", "90210"]
    assert data["monthly_price"] == "97.00"
    assert data["cancel_at_period_end"] is False
    assert {"id", "current_period_start", "current_period_end"} <= set(data)
    assert assert_success(agency_client.get(STATUS), 200) == data


def test_subscribe_charges_the_first_month_in_the_billing_history(subscribed):
    data = assert_success(subscribed.get(HISTORY), 200)

    assert data["count"] == 1
    entry = data["results"][0]
    assert (entry["kind"], entry["reason"], entry["amount"], entry["balance"]) == (
        "charge",
        "subscription_started",
        "97.00",
        "97.00",
    )
    assert entry["description"]
    assert entry["created_at"]


def test_subscribing_twice_is_409(subscribed, plan):
    body = assert_failure(subscribed.post(SUBSCRIBE, {"plan_id": plan.pk, "zipcodes": ["60601"]}), 409)

    assert "already" in body["message"]
    assert Subscription.objects.count() == 1


def test_subscribe_accepts_zip_plus_four_and_stores_the_five_digits(agency_client, plan):
    data = assert_success(agency_client.post(SUBSCRIBE, {"plan_id": plan.pk, "zipcodes": ["10001-1234"]}), 201)

    assert data["zipcodes"] == ["10001"]


def test_subscribe_fills_city_and_state(subscribed):
    results = assert_success(subscribed.get(TERRITORIES), 200)["results"]

    assert [(t["zipcode"], t["city"], t["state"], t["monthly_price"]) for t in results] == [
        ("10001", "New York", "NY", "24.00"),
        ("90210", "Beverly Hills", "CA", "24.00"),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "plan_id"),
        ({"plan_id": "abc", "zipcodes": ["10001"]}, "plan_id"),
        ({"plan_id": 0, "zipcodes": ["10001"]}, "plan_id"),
        ({"plan_id": 999999, "zipcodes": ["10001"]}, "plan_id"),
        ({"plan_id": "PLAN", "zipcodes": "10001"}, "zipcodes"),
        ({"plan_id": "PLAN"}, "zipcodes"),
        ({"plan_id": "PLAN", "zipcodes": []}, "zipcodes"),
        ({"plan_id": "PLAN", "zipcodes": ["1000"]}, "zipcodes.0"),
        ({"plan_id": "PLAN", "zipcodes": ["10001", "abcde"]}, "zipcodes.1"),
        ({"plan_id": "PLAN", "zipcodes": ["00000"]}, "zipcodes.0"),
        ({"plan_id": "PLAN", "zipcodes": [10001]}, "zipcodes.0"),
        ({"plan_id": "PLAN", "zipcodes": [None]}, "zipcodes.0"),
        ({"plan_id": "PLAN", "zipcodes": ["10001", "10001"]}, "zipcodes"),
        ({"plan_id": "PLAN", "zipcodes": ["10001", "90210", "60601", "94105"]}, "zipcodes"),
        ({"plan_id": "PLAN", "zipcodes": ["10001"], "status": "active"}, "status"),
        ({"plan_id": "INACTIVE", "zipcodes": ["10001"]}, "plan_id"),
    ],
)
def test_bad_subscribe_input_is_400_on_the_field(agency_client, plan, body, field):
    inactive = PlanFactory(is_active=False)
    placeholders = {"PLAN": plan.pk, "INACTIVE": inactive.pk}
    body = {key: placeholders.get(value, value) if isinstance(value, str) else value for key, value in body.items()}

    errors = assert_failure(agency_client.post(SUBSCRIBE, body, format="json"), 400)["errors"]

    assert field in errors
    assert all(isinstance(messages, list) and messages for messages in errors.values())
    assert not Subscription.objects.exists()


def test_unknown_zipcode_says_so(agency_client, plan):
    errors = assert_failure(agency_client.post(SUBSCRIBE, {"plan_id": plan.pk, "zipcodes": ["99999"]}), 400)["errors"]

    assert errors == {"zipcodes.0": ["99999 is not a known US ZIP code."]}


# --- Upgrade ------------------------------------------------------------------------------


def test_upgrade_returns_the_subscription_on_the_new_plan_and_bills_it(subscribed):
    pro = PlanFactory(name="Pro", price_per_zipcode=Decimal("19.00"), base_price=Decimal("149.00"), max_zipcodes=10)

    data = assert_success(subscribed.put(UPGRADE, {"plan_id": pro.pk}), 200)

    assert data["plan"]["name"] == "Pro"
    assert data["monthly_price"] == "187.00"
    kinds = [(e["kind"], e["reason"]) for e in assert_success(subscribed.get(HISTORY), 200)["results"]]
    assert kinds[:2] == [("charge", "plan_changed"), ("credit", "plan_changed")]


def test_downgrade_below_the_held_zipcodes_is_409_saying_why(subscribed):
    small = PlanFactory(name="Small", max_zipcodes=1)

    body = assert_failure(subscribed.put(UPGRADE, {"plan_id": small.pk}), 409)

    assert "allows 1 ZIP codes and you hold 2" in body["message"]
    assert "plan_id" in body["errors"]


@pytest.mark.parametrize("body", [{}, {"plan_id": None}, {"plan_id": "x"}, {"plan_id": 999999}, {"plan": 1}])
def test_bad_upgrade_input_is_400(subscribed, body):
    errors = assert_failure(subscribed.put(UPGRADE, body, format="json"), 400)["errors"]

    assert errors


def test_upgrade_without_a_subscription_is_409(agency_client, plan):
    assert_failure(agency_client.put(UPGRADE, {"plan_id": plan.pk}), 409)


def test_upgrade_is_put_only(subscribed, plan):
    assert_failure(subscribed.post(UPGRADE, {"plan_id": plan.pk}), 405)


# --- Cancel -------------------------------------------------------------------------------


def test_cancel_by_default_keeps_the_subscription_until_period_end(subscribed):
    data = assert_success(subscribed.post(CANCEL, {}), 200)

    assert data["status"] == "active"
    assert data["cancel_at_period_end"] is True
    assert data["cancelled_at"] is not None
    assert assert_success(subscribed.get(STATUS), 200)["cancel_at_period_end"] is True
    assert assert_success(subscribed.get(HISTORY), 200)["count"] == 1


def test_cancel_immediately_ends_it_with_a_credit(subscribed):
    data = assert_success(subscribed.post(CANCEL, {"immediate": True}), 200)

    assert data["status"] == "cancelled"
    assert assert_success(subscribed.get(STATUS), 200) is None
    assert assert_success(subscribed.get(TERRITORIES), 200)["results"] == []
    latest = assert_success(subscribed.get(HISTORY), 200)["results"][0]
    assert (latest["kind"], latest["reason"]) == ("credit", "cancelled")


@pytest.mark.parametrize(("body", "field"), [({"immediate": "maybe"}, "immediate"), ({"when": "now"}, "when")])
def test_bad_cancel_input_is_400(subscribed, body, field):
    assert field in assert_failure(subscribed.post(CANCEL, body, format="json"), 400)["errors"]


def test_cancel_without_a_subscription_is_409(agency_client):
    assert_failure(agency_client.post(CANCEL, {}), 409)


# --- Territories --------------------------------------------------------------------------


def test_add_territory_returns_it_with_city_state_and_price(subscribed):
    data = assert_success(subscribed.post(TERRITORIES, {"zipcode": "02108"}), 201)

    assert data["zipcode"] == "02108"
    assert (data["city"], data["state"], data["monthly_price"]) == ("Boston", "MA", "24.00")
    latest = assert_success(subscribed.get(HISTORY), 200)["results"][0]
    assert (latest["kind"], latest["reason"], latest["reference"]) == ("charge", "territory_added", "02108")


def test_adding_beyond_the_plan_limit_is_409(subscribed):
    assert_success(subscribed.post(TERRITORIES, {"zipcode": "60601"}), 201)

    body = assert_failure(subscribed.post(TERRITORIES, {"zipcode": "94105"}), 409)

    assert "allows 3 ZIP codes" in body["message"]


def test_adding_a_zipcode_already_held_is_409(subscribed):
    assert_failure(subscribed.post(TERRITORIES, {"zipcode": "10001"}), 409)


def test_adding_a_territory_without_a_subscription_is_409(agency_client):
    assert_failure(agency_client.post(TERRITORIES, {"zipcode": "10001"}), 409)


@pytest.mark.parametrize(
    "body", [{}, {"zipcode": ""}, {"zipcode": "abcde"}, {"zipcode": "123456"}, {"zipcode": "00000"}]
)
def test_bad_territory_input_is_400_on_zipcode(subscribed, body):
    assert "zipcode" in assert_failure(subscribed.post(TERRITORIES, body, format="json"), 400)["errors"]


def test_remove_territory_returns_it_and_credits(subscribed):
    data = assert_success(subscribed.delete(f"{TERRITORIES}/90210"), 200)

    assert data["zipcode"] == "90210"
    assert [t["zipcode"] for t in assert_success(subscribed.get(TERRITORIES), 200)["results"]] == ["10001"]
    latest = assert_success(subscribed.get(HISTORY), 200)["results"][0]
    assert (latest["kind"], latest["reason"]) == ("credit", "territory_removed")


def test_removing_a_zipcode_not_held_is_404(subscribed):
    assert_failure(subscribed.delete(f"{TERRITORIES}/60601"), 404)


def test_removing_a_malformed_zipcode_is_400(subscribed):
    assert "zipcode" in assert_failure(subscribed.delete(f"{TERRITORIES}/abc"), 400)["errors"]


# --- Scoping ------------------------------------------------------------------------------


def test_another_agencys_subscription_territories_and_history_are_never_visible(agency_client, plan):
    other = other_agency_with_history(plan)

    assert assert_success(agency_client.get(STATUS), 200) is None
    assert assert_success(agency_client.get(TERRITORIES), 200)["count"] == 0
    assert assert_success(agency_client.get(HISTORY), 200)["count"] == 0
    assert_failure(agency_client.delete(f"{TERRITORIES}/60601"), 404)
    assert_failure(agency_client.post(CANCEL, {"immediate": True}), 409)

    assert Territory.objects.for_agency(other).count() == 2
    assert Subscription.objects.get(agency=other).status == SubscriptionStatus.ACTIVE


def test_each_agency_sees_only_its_own_history_and_balance(subscribed, plan):
    other_agency_with_history(plan)

    results = assert_success(subscribed.get(HISTORY), 200)["results"]

    assert len(results) == 1
    assert results[0]["balance"] == "97.00"


# --- Billing history ----------------------------------------------------------------------


def test_history_is_newest_first_paginated_with_the_running_balance(agency, plan):
    client = client_for(agency.user, Realm.AGENCY)
    jan = datetime(2025, 1, 1, tzinfo=UTC)
    services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=["10001"], now=jan)  # +73.00
    services.remove_territory(agency=agency, zipcode="10001", now=datetime(2025, 1, 16, 12, tzinfo=UTC))  # -12.00
    services.renew_subscriptions(now=datetime(2025, 2, 1, tzinfo=UTC))  # +49.00 (no ZIP codes left)

    page_1 = assert_success(client.get(HISTORY, {"page_size": 2}), 200)
    page_2 = assert_success(client.get(page_1["next"]), 200)

    assert page_1["count"] == 3
    rows = [(e["kind"], e["amount"], e["signed_amount"], e["balance"]) for e in page_1["results"] + page_2["results"]]
    assert rows == [
        ("charge", "49.00", "49.00", "110.00"),
        ("credit", "12.00", "-12.00", "61.00"),
        ("charge", "73.00", "73.00", "73.00"),
    ]
    assert page_2["next"] is None


def test_every_amount_in_the_api_is_a_two_place_string(subscribed):
    subscribed.post(TERRITORIES, {"zipcode": "60601"})
    subscribed.delete(f"{TERRITORIES}/60601")

    history = assert_success(subscribed.get(HISTORY), 200)["results"]
    status = assert_success(subscribed.get(STATUS), 200)

    amounts = [e[key] for e in history for key in ("amount", "signed_amount", "balance")]
    amounts += [status["monthly_price"], status["base_price"], status["price_per_zipcode"]]
    assert all(isinstance(value, str) and MONEY.match(value) for value in amounts), amounts


# --- Auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", STATUS),
        ("post", SUBSCRIBE),
        ("put", UPGRADE),
        ("post", CANCEL),
        ("get", TERRITORIES),
        ("post", TERRITORIES),
        ("delete", f"{TERRITORIES}/10001"),
        ("get", HISTORY),
    ],
)
def test_agency_endpoints_need_an_agency_token(api_client, staff_client, method, path):
    assert_failure(getattr(api_client, method)(path, {}, format="json"), 401)
    assert_failure(getattr(staff_client, method)(path, {}, format="json"), 401)


def test_paths_work_with_a_trailing_slash(subscribed):
    assert_success(subscribed.get(STATUS + "/"), 200)
    assert_success(subscribed.get(TERRITORIES + "/"), 200)
    assert_success(subscribed.delete(f"{TERRITORIES}/10001/"), 200)


def test_api_changes_are_audited_with_the_agency_user_and_address(subscribed, agency):
    subscribed.post(TERRITORIES, {"zipcode": "60601"}, REMOTE_ADDR="203.0.113.9")

    log = AuditLog.objects.get(action="territory.added")

    assert log.actor == agency.user
    assert log.ip == "203.0.113.9"


# --- Query counts -------------------------------------------------------------------------


def count_queries(client, path) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert_success(client.get(path), 200)
    return len(queries)


def test_list_query_counts_do_not_grow_with_rows(agency, agency_client):
    big = PlanFactory(max_zipcodes=len(ZIPS))
    jan = datetime(2025, 1, 1, tzinfo=UTC)
    services.subscribe(agency=agency, plan_id=big.pk, zipcodes=ZIPS[:1], now=jan)
    few = {path: count_queries(agency_client, path) for path in (STATUS, TERRITORIES, HISTORY)}

    for zipcode in ZIPS[1:]:
        services.add_territory(agency=agency, zipcode=zipcode, now=jan)
    services.renew_subscriptions(now=datetime(2025, 2, 1, tzinfo=UTC))
    many = {path: count_queries(agency_client, path) for path in (STATUS, TERRITORIES, HISTORY)}

    assert LedgerEntry.objects.count() >= 10
    assert many == few
