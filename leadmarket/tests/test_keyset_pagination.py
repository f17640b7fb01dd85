"""KeysetPagination: the contract's page shape and ?page=N, plus cursor links and a capped count."""

import base64
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agencies.authentication import Realm
from agencies.tests.factories import StaffUserFactory
from conftest import assert_failure, client_for
from leadmarket.api import pagination
from leads.models import Lead
from leads.tests.factories import LeadFactory, subscribed_agency

pytestmark = pytest.mark.django_db

ADMIN = "/api/admin/leads"


@pytest.fixture
def staff():
    user = StaffUserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_lead"))
    return client_for(user, Realm.STAFF)


@pytest.fixture
def leads():
    now = timezone.now()
    # Two leads share each timestamp: the id breaks the tie, in the cursor too.
    made = [LeadFactory(received_at=now - timedelta(minutes=n // 2)) for n in range(7)]
    return sorted(made, key=lambda lead: (lead.received_at, lead.id), reverse=True)


def ids(page) -> list[int]:
    return [row["id"] for row in page["results"]]


def test_following_next_and_previous_links_walks_the_list_in_order(staff, leads):
    first = staff.get(ADMIN, {"page_size": 3}).json()["data"]
    assert set(first) == {"results", "count", "next", "previous"}
    assert (ids(first), first["count"], first["previous"]) == ([lead.id for lead in leads[:3]], 7, None)
    assert "cursor=" in first["next"]
    assert "page_size=3" in first["next"]

    second = staff.get(first["next"]).json()["data"]
    third = staff.get(second["next"]).json()["data"]
    assert ids(second) == [lead.id for lead in leads[3:6]]
    assert (ids(third), third["next"]) == ([leads[6].id], None)

    back = staff.get(third["previous"]).json()["data"]
    assert ids(back) == ids(second)
    assert ids(staff.get(back["previous"]).json()["data"]) == ids(first)


def test_page_numbers_still_work_with_page_links_back(staff, leads):
    page = staff.get(ADMIN, {"page_size": 3, "page": 2}).json()["data"]
    assert ids(page) == [lead.id for lead in leads[3:6]]
    assert "page=" not in page["previous"]
    assert "cursor=" not in page["previous"]
    assert ids(staff.get(page["next"]).json()["data"]) == [leads[6].id]
    assert "page=2" in staff.get(ADMIN, {"page_size": 3, "page": 3}).json()["data"]["previous"]


@pytest.mark.parametrize("query", [{"page": "9"}, {"page": "0"}, {"page": "x"}, {"cursor": "garbage"},
                                   {"cursor": pagination.encode_cursor(["not a date", 1])},
                                   {"cursor": pagination.encode_cursor([1])}])  # fmt: skip
def test_bad_pages_and_cursors_are_404_not_500(staff, leads, query):
    assert_failure(staff.get(ADMIN, query), 404)


def test_count_is_exact_up_to_the_limit_then_an_estimate(staff, leads, monkeypatch):
    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 5)
    counted = pagination.capped_count(Lead.objects.all(), limit=5)
    assert counted >= 6  # the planner's estimate, never below limit + 1
    assert pagination.capped_count(Lead.objects.all(), limit=10) == 7


def _queries_and_page(client, url, query=None) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url, query).json()["data"]
    return len(queries), page


def test_an_estimate_is_reused_per_user_and_filters(staff, leads, monkeypatch):
    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 5)  # 7 leads: an estimate
    counted, first = _queries_and_page(staff, ADMIN, {"page_size": 2})
    reused, second = _queries_and_page(staff, first["next"])
    assert second["count"] == first["count"] >= 6
    assert reused == counted - 2  # neither the capped count nor the EXPLAIN
    assert _queries_and_page(staff, ADMIN, {"page_size": 5})[0] == counted - 2  # page size is not a filter

    assert _queries_and_page(staff, ADMIN, {"page_size": 2, "is_test": "false"})[0] == counted
    other = StaffUserFactory()
    other.user_permissions.add(Permission.objects.get(codename="view_lead"))
    assert _queries_and_page(client_for(other, Realm.STAFF), ADMIN, {"page_size": 2})[0] == counted

    monkeypatch.setattr(pagination, "ESTIMATE_CACHE_SECONDS", 0)  # kept for no time: counted every time
    cache.clear()
    assert _queries_and_page(staff, ADMIN, {"page_size": 2})[0] == counted
    assert _queries_and_page(staff, ADMIN, {"page_size": 2})[0] == counted


def test_a_list_counts_when_the_cache_is_down(staff, leads, monkeypatch):
    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 5)

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)
    response = staff.get(ADMIN, {"page_size": 2})
    assert response.status_code == 200
    assert ids(response.json()["data"]) == [lead.id for lead in leads[:2]]
    assert response.json()["data"]["count"] >= 6


def test_an_exact_count_follows_every_change(staff, leads):
    first = staff.get(ADMIN, {"page_size": 2}).json()["data"]
    LeadFactory()
    assert (first["count"], staff.get(first["next"]).json()["data"]["count"]) == (7, 8)


def test_a_last_page_by_number_is_counted_without_a_count_query(staff, leads):
    # Lengths are taken at once: the next request outside a capture clears the query log.
    with CaptureQueriesContext(connection) as queries:
        first = staff.get(ADMIN, {"page_size": 3}).json()["data"]
    counted = len(queries)
    with CaptureQueriesContext(connection) as queries:
        whole = staff.get(ADMIN, {"page_size": 10}).json()["data"]
    not_counted = len(queries)
    last = staff.get(ADMIN, {"page_size": 3, "page": 3}).json()["data"]

    assert (first["count"], whole["count"], last["count"]) == (7, 7, 7)
    assert (ids(whole), whole["next"]) == ([lead.id for lead in leads], None)
    assert not_counted == counted - 1


def test_a_deep_cursor_page_costs_the_same_queries_as_the_first(staff, leads):
    first = staff.get(ADMIN, {"page_size": 2}).json()["data"]
    with CaptureQueriesContext(connection) as queries:
        staff.get(first["next"])
    shallow = len(queries)  # now: the requests below clear the query log
    deep = first
    for _ in range(2):
        deep = staff.get(deep["next"]).json()["data"]
    with CaptureQueriesContext(connection) as queries:
        staff.get(deep["next"])
    assert len(queries) == shallow


@pytest.mark.parametrize(
    "values", [["garbage", "x"], [1, 2, 3], [{"a": 1}, [1]], [None, None], [12.5, "2026-01-01T00:00:00Z"]]
)
def test_a_forged_cursor_is_a_4xx_never_a_500(values):
    agency = subscribed_agency("10001")
    LeadFactory()
    cursor = base64.urlsafe_b64encode(json.dumps([values, False]).encode()).decode().rstrip("=")

    response = client_for(agency.user, Realm.AGENCY).get("/api/mobile/leads", {"cursor": cursor})

    assert response.status_code == 404
    assert response.json()["success"] is False
