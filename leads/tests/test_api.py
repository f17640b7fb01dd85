from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agencies.authentication import Realm
from agencies.tests.factories import StaffUserFactory
from conftest import client_for
from leads import distribution
from leads.api.serializers import AdminLeadDetailSerializer, AdminLeadSerializer, MobileLeadSerializer
from leads.models import Lead, LeadStatus, Offer, OfferStatus
from leads.tests.factories import LeadFactory, distribute_lead, subscribed_agency
from portals.models import Reception

pytestmark = pytest.mark.django_db

MOBILE = "/api/mobile/leads"
ADMIN = "/api/admin/leads"


def offered_lead(agency, **fields) -> Lead:
    lead = LeadFactory(**fields)
    distribute_lead(lead_id=lead.pk, now=timezone.now())
    return lead


@pytest.fixture
def subscribed():
    agency = subscribed_agency("10001")
    return agency, client_for(agency.user, Realm.AGENCY)


@pytest.fixture
def operations_client():
    user = StaffUserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_lead", "distribute_lead"]))
    return client_for(user, Realm.STAFF)


def test_offered_lead_shows_only_the_teaser_until_accepted(subscribed):
    agency, client = subscribed
    lead = offered_lead(agency, last_name="Secret", email="secret@example.com")

    before = client.get(f"{MOBILE}/{lead.pk}").json()["data"]
    accepted = client.put(f"{MOBILE}/{lead.pk}/accept")
    after = client.get(f"{MOBILE}/{lead.pk}").json()["data"]

    assert before["first_name"] == "Ada"
    assert before["zipcode"] == "10001"
    assert before["last_name"] is None
    assert before["email"] is None
    assert before["phone"] is None
    assert before["contact_visible"] is False
    assert accepted.status_code == 200
    assert accepted.json()["data"] == after
    assert after["last_name"] == "Secret"
    assert after["email"] == "secret@example.com"
    assert after["offer_status"] == "accepted"


def test_list_is_newest_first_and_filters_by_status(subscribed):
    agency, client = subscribed
    first, second = offered_lead(agency), offered_lead(agency)
    client.put(f"{MOBILE}/{first.pk}/accept")

    everything = client.get(MOBILE).json()["data"]
    accepted = client.get(MOBILE, {"status": "accepted"}).json()["data"]

    assert [row["id"] for row in everything["results"]] == [second.pk, first.pk]
    assert [row["id"] for row in accepted["results"]] == [first.pk]


def test_reject_with_reason_moves_the_lead_on_and_hides_it(subscribed):
    agency, client = subscribed
    other = subscribed_agency("10001")
    lead = offered_lead(agency)

    response = client.put(f"{MOBILE}/{lead.pk}/reject", {"reason": "no_capacity", "note": "busy week"})

    assert response.status_code == 200
    assert response.json()["data"] is None
    assert Offer.objects.get(lead=lead, status=OfferStatus.OFFERED).agency == other
    assert client.get(f"{MOBILE}/{lead.pk}").status_code == 404


def test_reject_needs_a_known_reason(subscribed):
    agency, client = subscribed
    lead = offered_lead(agency)

    response = client.put(f"{MOBILE}/{lead.pk}/reject", {"reason": "meh"})

    assert response.status_code == 400
    assert "reason" in response.json()["errors"]
    assert Offer.objects.get(lead=lead).status == OfferStatus.OFFERED


def test_another_agencys_lead_is_404_everywhere_and_nothing_changes(subscribed):
    _agency, client = subscribed
    lead = LeadFactory(zipcode="90210")
    owner = subscribed_agency("90210")
    distribute_lead(lead_id=lead.pk, now=timezone.now())

    assert client.get(f"{MOBILE}/{lead.pk}").status_code == 404
    assert client.put(f"{MOBILE}/{lead.pk}/accept").status_code == 404
    assert client.put(f"{MOBILE}/{lead.pk}/reject", {"reason": "other"}).status_code == 404
    offer = Offer.objects.get(lead=lead)
    assert offer.agency == owner
    assert offer.status == OfferStatus.OFFERED


def test_accepting_a_lead_no_longer_offered_is_409(subscribed):
    agency, client = subscribed
    subscribed_agency("10001")
    lead = offered_lead(agency)
    client.put(f"{MOBILE}/{lead.pk}/reject", {"reason": "other"})

    response = client.put(f"{MOBILE}/{lead.pk}/accept")

    assert response.status_code == 409
    assert Offer.objects.get(lead=lead, agency=agency).status == OfferStatus.REJECTED


def test_expired_but_unswept_offer_is_409_on_accept(subscribed):
    agency, client = subscribed
    lead = offered_lead(agency)
    Offer.objects.filter(lead=lead).update(
        offered_at=timezone.now() - timedelta(hours=2), expires_at=timezone.now() - timedelta(minutes=1)
    )

    assert client.get(f"{MOBILE}/{lead.pk}").status_code == 404
    assert client.put(f"{MOBILE}/{lead.pk}/accept").status_code == 409
    assert Lead.objects.get(pk=lead.pk).status == LeadStatus.OFFERED


def test_mobile_rows_hold_the_documented_fields_with_utc_times(subscribed):
    agency, client = subscribed
    lead = offered_lead(agency, received_at=datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=UTC))
    Offer.objects.filter(lead=lead).update(offered_at=datetime(2026, 1, 2, 3, 5, tzinfo=UTC))
    expires_at = Offer.objects.get(lead=lead).expires_at

    row = client.get(MOBILE).json()["data"]["results"][0]
    detail = client.get(f"{MOBILE}/{lead.pk}").json()["data"]

    assert row == detail
    assert set(row) == set(MobileLeadSerializer().fields)
    assert row == {
        "id": lead.pk,
        "offer_status": "offered",
        "offered_at": "2026-01-02T03:05:00Z",
        "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
        "responded_at": None,
        "lead_type": "auto",
        "zipcode": "10001",
        "city": "New York",
        "state": "NY",
        "first_name": "Ada",
        "received_at": "2026-01-02T03:04:05.678900Z",
        "contact_visible": False,
        "last_name": None,
        "email": None,
        "phone": None,
        "address": None,
        "details": None,
    }


def test_mobile_list_query_count_does_not_grow(subscribed):
    agency, client = subscribed
    offered_lead(agency)
    with CaptureQueriesContext(connection) as few:
        client.get(MOBILE)
    for _ in range(10):
        offered_lead(agency)

    with CaptureQueriesContext(connection) as many:
        assert client.get(MOBILE).json()["data"]["count"] == 11

    assert len(many) == len(few)


def test_admin_list_filters_and_query_count(operations_client):
    agency = subscribed_agency("10001")
    offered_lead(agency, email="findme@example.com")
    LeadFactory(zipcode="90210", status=LeadStatus.DUPLICATE)
    with CaptureQueriesContext(connection) as few:
        operations_client.get(ADMIN)
    for _ in range(10):
        offered_lead(agency)

    with CaptureQueriesContext(connection) as many:
        everything = operations_client.get(ADMIN).json()["data"]

    assert everything["count"] == 12
    assert len(many) == len(few)
    assert everything["results"][0]["agency_id"] == agency.id
    assert operations_client.get(ADMIN, {"zipcode": "90210"}).json()["data"]["count"] == 1
    assert operations_client.get(ADMIN, {"is_duplicate": "true"}).json()["data"]["count"] == 1
    assert operations_client.get(ADMIN, {"agency": agency.id}).json()["data"]["count"] == 11
    assert operations_client.get(ADMIN, {"status": "offered", "portal": "test-portal"}).json()["data"]["count"] == 11
    assert operations_client.get(ADMIN, {"search": "FindMe@example.com"}).json()["data"]["count"] == 1


def test_admin_rows_hold_the_documented_fields_with_utc_times(operations_client):
    agency = subscribed_agency("10001")
    lead = offered_lead(agency, received_at=datetime(2026, 1, 2, 3, 4, 5, 500, tzinfo=UTC), external_id="x-1")
    Lead.objects.filter(pk=lead.pk).update(status_changed_at=None)
    duplicate = LeadFactory(status=LeadStatus.DUPLICATE, duplicate_of=lead)

    newest, row = operations_client.get(ADMIN).json()["data"]["results"]
    detail = operations_client.get(f"{ADMIN}/{lead.pk}").json()["data"]

    assert set(row) == set(AdminLeadSerializer().fields)
    assert set(detail) == set(AdminLeadDetailSerializer().fields)
    assert {field: detail[field] for field in row} == row
    assert row == {
        "id": lead.pk,
        "status": "offered",
        "received_at": "2026-01-02T03:04:05.000500Z",
        "status_changed_at": None,
        "portal": "test-portal",
        "zipcode": "10001",
        "city": "New York",
        "state": "NY",
        "lead_type": "auto",
        "first_name": "Ada",
        "last_name": lead.last_name,
        "email": lead.email,
        "phone": "+12125550100",
        "is_test": False,
        "duplicate_of": None,
        "external_id": "x-1",
        "agency_id": agency.pk,
        "agency_name": agency.business_name,
    }
    assert (newest["id"], newest["duplicate_of"], newest["agency_id"]) == (duplicate.pk, lead.pk, None)


def test_admin_detail_shows_offers_with_trace_and_receptions(operations_client):
    agency = subscribed_agency("10001")
    lead = offered_lead(agency)
    Reception.objects.create(
        portal=lead.portal,
        portal_code=lead.portal.code,
        received_at=lead.received_at,
        status_code=201,
        outcome="accepted",
        lead=lead,
    )

    data = operations_client.get(f"{ADMIN}/{lead.pk}").json()["data"]

    assert data["offers"][0]["agency"] == agency.id
    assert data["offers"][0]["decision"]["eligible"] == [agency.id]
    assert data["receptions"][0]["status_code"] == 201


def test_admin_distribute_to_an_agency_and_force(operations_client):
    lead = LeadFactory()
    covering, outsider = subscribed_agency("10001"), subscribed_agency("90210")

    refused = operations_client.post(f"{ADMIN}/{lead.pk}/distribute", {"agency_id": outsider.id})
    rotation = operations_client.post(f"{ADMIN}/{lead.pk}/distribute", {})
    forced = operations_client.post(f"{ADMIN}/{lead.pk}/distribute", {"agency_id": outsider.id, "force": True})

    assert refused.status_code == 400
    assert "agency_id" in refused.json()["errors"]
    assert rotation.json()["data"]["agency_id"] == covering.id
    assert forced.status_code == 200
    assert forced.json()["data"]["agency_id"] == outsider.id


def test_admin_distribute_needs_the_permission(staff_client):
    lead = LeadFactory()

    assert staff_client.post(f"{ADMIN}/{lead.pk}/distribute", {}).status_code == 403


def test_distribution_stats(operations_client):
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    leads = [offered_lead(first) for _ in range(4)]
    distribution.accept_offer(agency=first, lead_id=leads[0].pk, now=timezone.now())
    LeadFactory(status=LeadStatus.UNASSIGNED, zipcode="90210")

    data = operations_client.get(f"{ADMIN}/distribution/stats").json()["data"]

    per_agency = {row["agency_id"]: row for row in data["per_agency"]}
    assert per_agency[first.id]["offers"] == 2
    assert per_agency[first.id]["awaiting"] == 1
    assert per_agency[first.id]["accepted"] == 1
    assert per_agency[first.id]["acceptance_rate"] == 1.0
    assert per_agency[first.id]["median_response_seconds"] >= 0
    assert per_agency[second.id]["offers"] == 2
    assert data["currently_unassigned"] == 1
    assert data["awaiting_response"] == 3
    assert {row["zipcode"] for row in data["per_zipcode"]} == {"10001", "90210"}


def test_stats_reject_a_bad_date(operations_client):
    response = operations_client.get(f"{ADMIN}/distribution/stats", {"received_after": "yesterday"})

    assert response.status_code == 400
    assert "received_after" in response.json()["errors"]
