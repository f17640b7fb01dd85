"""The staff agencies API: list, overview, profile and status changes (suspension)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agencies.authentication import Realm
from agencies.models import Agency, AgencyStatus, Notification, NotificationKind
from agencies.tests.factories import AgencyFactory
from audit.models import AuditLog
from conftest import assert_failure, assert_success, client_for, staff_with_role
from leads import distribution
from leads.models import Lead, LeadStatus, Offer, OfferStatus
from leads.tests.factories import LeadFactory, distribute_lead, subscribed_agency

pytestmark = pytest.mark.django_db

AGENCIES = "/api/admin/agencies"


@pytest.fixture
def operations_client(roles):
    return client_for(staff_with_role(roles["operations"]), Realm.STAFF)


def offer(lead: Lead) -> Offer:
    distribute_lead(lead_id=lead.pk, now=timezone.now())
    return Offer.objects.live().get(lead=lead)


def test_list_shows_subscription_summary_and_lead_counts(operations_client):
    subscribed = subscribed_agency("10001", "10002", business_name="Acme")
    offer(LeadFactory())
    bare = AgencyFactory(business_name="Bare")

    data = assert_success(operations_client.get(AGENCIES), 200)

    rows = {row["id"]: row for row in data["results"]}
    assert rows[subscribed.pk]["subscription"]["zipcode_count"] == 2
    assert rows[subscribed.pk]["subscription"]["status"] == "active"
    assert rows[subscribed.pk]["leads"] == {"offered": 1, "awaiting": 1, "accepted": 0}
    assert rows[subscribed.pk]["email"] == subscribed.user.email
    assert rows[bare.pk]["subscription"] is None
    assert rows[bare.pk]["leads"] == {"offered": 0, "awaiting": 0, "accepted": 0}


def test_list_filters_by_status_subscription_zipcode_and_search(operations_client):
    covering = subscribed_agency("10001", business_name="Covering Insurance")
    elsewhere = subscribed_agency("90210", business_name="Elsewhere")
    suspended = AgencyFactory(status=AgencyStatus.SUSPENDED, business_name="Gone")

    def ids(**params):
        return {row["id"] for row in assert_success(operations_client.get(AGENCIES, params), 200)["results"]}

    assert ids(status="suspended") == {suspended.pk}
    assert ids(has_live_subscription="true") == {covering.pk, elsewhere.pk}
    assert ids(has_live_subscription="false") == {suspended.pk}
    assert ids(zipcode="10001") == {covering.pk}
    assert ids(search="covering") == {covering.pk}
    assert ids(search=elsewhere.user.email.upper()) == {elsewhere.pk}


def test_list_rejects_bad_filters_with_field_errors(operations_client):
    assert "zipcode" in assert_failure(operations_client.get(AGENCIES, {"zipcode": "abc"}), 400)["errors"]
    assert "status" in assert_failure(operations_client.get(AGENCIES, {"status": "sleeping"}), 400)["errors"]


def test_list_query_count_does_not_grow_with_agencies(operations_client):
    subscribed_agency("10001")
    with CaptureQueriesContext(connection) as few:
        assert_success(operations_client.get(AGENCIES), 200)
    for _ in range(6):
        subscribed_agency("10001", "10002")
    for _ in range(4):
        offer(LeadFactory())

    with CaptureQueriesContext(connection) as many:
        data = assert_success(operations_client.get(AGENCIES), 200)

    assert data["count"] == 7
    assert len(many) == len(few)


def test_detail_shows_subscription_territories_balance_recent_leads_and_stats(operations_client):
    agency = subscribed_agency("10001", "10002")
    accepted = offer(LeadFactory())
    distribution.accept_offer(agency=agency, lead_id=accepted.lead_id, now=timezone.now())
    offer(LeadFactory())

    data = assert_success(operations_client.get(f"{AGENCIES}/{agency.pk}"), 200)

    assert data["agency"]["id"] == agency.pk
    assert data["subscription"]["zipcodes"] == ["10001", "10002"]
    assert [t["zipcode"] for t in data["territories"]] == ["10001", "10002"]
    assert data["balance"] == str(Agency.objects.get(pk=agency.pk).ledger_entries.get().amount)
    assert [lead["offer_status"] for lead in data["recent_leads"]] == ["offered", "accepted"]
    assert data["offer_stats"]["total"] == 2
    assert data["offer_stats"]["accepted"] == 1
    assert data["offer_stats"]["acceptance_rate"] == 1.0


def test_detail_of_unknown_agency_is_404(operations_client):
    assert_failure(operations_client.get(f"{AGENCIES}/999999"), 404)
    assert_failure(operations_client.put(f"{AGENCIES}/999999", {"status": "suspended"}), 404)


def test_profile_change_is_audited_with_before_after_and_address(operations_client):
    agency = AgencyFactory(business_name="Old")

    data = assert_success(
        operations_client.put(
            f"{AGENCIES}/{agency.pk}", {"business_name": "New", "phone": "(212) 555-0100"}, REMOTE_ADDR="203.0.113.9"
        ),
        200,
    )

    assert data["agency"]["business_name"] == "New"
    assert data["agency"]["phone"] == "+12125550100"
    entry = AuditLog.objects.get(action="agency.updated", object_id=str(agency.pk))
    assert entry.changes["business_name"] == {"before": "Old", "after": "New"}
    assert entry.ip == "203.0.113.9"
    assert entry.actor.groups.get().name == "operations"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"status": "asleep"}, "status"), ({"owner": 1}, "owner"), ({"business_name": ""}, "business_name")],
)
def test_bad_changes_are_400_on_the_field(operations_client, body, field):
    agency = AgencyFactory()

    assert field in assert_failure(operations_client.put(f"{AGENCIES}/{agency.pk}", body), 400)["errors"]


def test_suspension_moves_live_offers_to_the_next_agency(operations_client):
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    leads = LeadFactory.create_batch(2)
    offers = [offer(lead) for lead in leads]
    assert [o.agency_id for o in offers] == [first.pk, second.pk]

    data = assert_success(operations_client.put(f"{AGENCIES}/{first.pk}", {"status": "suspended"}), 200)

    assert data["agency"]["status"] == "suspended"
    assert Offer.objects.get(pk=offers[0].pk).status == OfferStatus.WITHDRAWN
    assert Offer.objects.live().get(lead=leads[0]).agency_id == second.pk
    assert Offer.objects.live().get(lead=leads[1]).agency_id == second.pk  # untouched
    assert not Offer.objects.live().filter(agency=first).exists()
    assert AuditLog.objects.filter(action="agency.suspended", object_id=str(first.pk)).count() == 1
    moved = AuditLog.objects.get(action="agency.offers_withdrawn")
    assert moved.metadata["moved_to"] == {str(leads[0].pk): second.pk}
    assert Notification.objects.filter(agency=first, kind=NotificationKind.LEAD_REASSIGNED).count() == 1
    new_lead = LeadFactory()
    assert offer(new_lead).agency_id == second.pk


def test_suspending_the_only_agency_leaves_its_leads_unassigned(operations_client):
    only = subscribed_agency("10001")
    lead = LeadFactory()
    offer(lead)

    assert_success(operations_client.put(f"{AGENCIES}/{only.pk}", {"status": "suspended"}), 200)

    assert Lead.objects.get(pk=lead.pk).status == LeadStatus.UNASSIGNED


def test_reactivation_puts_the_agency_back_and_retries_its_zipcodes(
    operations_client, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(
        "leads.tasks.redistribute_leads.apply_async", lambda kwargs, **_options: queued.append(kwargs["zipcodes"])
    )
    agency = subscribed_agency("10001", "10002", status=AgencyStatus.SUSPENDED)
    lead = LeadFactory()
    distribute_lead(lead_id=lead.pk, now=timezone.now())
    assert Lead.objects.get(pk=lead.pk).status == LeadStatus.UNASSIGNED

    with django_capture_on_commit_callbacks(execute=True):
        assert_success(operations_client.put(f"{AGENCIES}/{agency.pk}", {"status": "active"}), 200)
    distribution.redistribute_leads(now=timezone.now(), zipcode="10001")

    assert queued == [["10001", "10002"]]
    assert Offer.objects.live().get(lead=lead).agency_id == agency.pk
    assert AuditLog.objects.filter(action="agency.reactivated", object_id=str(agency.pk)).exists()


def test_support_may_change_status_but_viewer_may_not(roles):
    agency = AgencyFactory()
    support = client_for(staff_with_role(roles["support"]), Realm.STAFF)
    viewer = client_for(staff_with_role(roles["viewer"]), Realm.STAFF)

    assert_failure(viewer.put(f"{AGENCIES}/{agency.pk}", {"status": "suspended"}), 403)
    assert_success(viewer.get(f"{AGENCIES}/{agency.pk}"), 200)
    assert_success(support.put(f"{AGENCIES}/{agency.pk}", {"status": "suspended"}), 200)
    assert Agency.objects.get(pk=agency.pk).status == AgencyStatus.SUSPENDED


def test_suspending_again_moves_offers_still_live_to_the_suspended_agency(roles):
    from agencies import services

    staff = staff_with_role(roles["superadmin"])
    suspended, other = subscribed_agency("10001", status=AgencyStatus.SUSPENDED), subscribed_agency("10001")
    lead = LeadFactory()
    distribution.assign_lead(lead_id=lead.pk, actor=staff, agency_id=suspended.pk, force=True, now=timezone.now())

    services.set_agency_status(agency_id=suspended.pk, status=AgencyStatus.SUSPENDED, actor=staff, now=timezone.now())

    assert Offer.objects.live().get(lead=lead).agency_id == other.pk
    assert not AuditLog.objects.filter(action="agency.suspended").exists()  # no status change to record
    assert AuditLog.objects.filter(action="agency.offers_withdrawn", actor=staff).exists()
