"""The Django admin as the operations console: every model's pages, the actions that call
the services (audited), the dashboard, and the roles."""

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agencies.models import Agency, AgencyStatus
from audit.models import AuditLog
from audit.services import record_action
from conftest import staff_with_role
from leads import distribution, selectors
from leads.models import Lead, LeadStatus, Offer, OfferStatus
from leads.tests.factories import LeadFactory, PortalFactory, distribute_lead, subscribed_agency
from portals.tests.factories import make_portal

pytestmark = pytest.mark.django_db

LEADS = "/admin/leads/lead/"
AGENCIES = "/admin/agencies/agency/"
DASHBOARD = "/admin/leads/lead/dashboard/"
BUSINESS_APPS = {"agencies", "subscriptions", "portals", "leads", "audit", "auth"}


@pytest.fixture
def console(client, roles):
    """Logs the test client in to the admin as a user of the given role."""

    def log_in(role: str):
        user = staff_with_role(roles[role])
        client.force_login(user)
        return user

    return log_in


@pytest.fixture
def marketplace():
    """Two agencies sharing a ZIP code, some distributed leads, a ledger, receptions, audit rows."""
    first, second = (
        subscribed_agency("10001", business_name="First"),
        subscribed_agency("10001", business_name="Second"),
    )
    make_portal("acme")
    leads = LeadFactory.create_batch(3)
    for lead in leads:
        distribute_lead(lead_id=lead.pk, now=timezone.now())
    distribution.accept_offer(agency=first, lead_id=leads[0].pk, now=timezone.now())
    record_action(actor=None, action="test.seeded", target=first)
    return first, second, leads


@pytest.mark.parametrize("role", ["superadmin", "viewer"])
def test_every_registered_model_has_working_list_and_detail_pages(console, client, marketplace, role):
    console(role)
    failures = {}

    for model in admin.site._registry:
        if role == "viewer" and model._meta.app_label not in BUSINESS_APPS:
            continue
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages = [reverse(f"{name}_changelist")]
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages.append(reverse(f"{name}_change", args=[first.pk]))
        for page in pages:
            status = client.get(page).status_code
            if status != 200:
                failures[page] = status

    assert failures == {}


def test_lead_list_query_count_does_not_grow_with_leads(console, client, marketplace):
    console("operations")
    with CaptureQueriesContext(connection) as few:
        assert client.get(LEADS).status_code == 200
    for lead in LeadFactory.create_batch(10, portal=PortalFactory(code="other")):
        distribute_lead(lead_id=lead.pk, now=timezone.now())

    with CaptureQueriesContext(connection) as many:
        assert client.get(LEADS).status_code == 200

    assert len(many) == len(few)


def test_agency_list_query_count_does_not_grow_with_agencies(console, client, marketplace):
    console("operations")
    with CaptureQueriesContext(connection) as few:
        assert client.get(AGENCIES).status_code == 200
    for _ in range(5):
        subscribed_agency("10002")

    with CaptureQueriesContext(connection) as many:
        assert client.get(AGENCIES).status_code == 200

    assert len(many) == len(few)


def run_action(client, url: str, action: str, ids: list[int], **extra):
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in ids]}, **extra)


def test_redistribute_action_offers_the_lead_to_the_next_agency_and_is_audited(console, client, marketplace):
    first, second, leads = marketplace
    user = console("support")
    lead = leads[1]
    holder = Offer.objects.live().get(lead=lead).agency_id

    response = run_action(client, LEADS, "redistribute", [lead.pk], REMOTE_ADDR="198.51.100.20")

    assert response.status_code == 302
    assert Offer.objects.live().get(lead=lead).agency_id == ({first.pk, second.pk} - {holder}).pop()
    entry = AuditLog.objects.get(action="lead.distributed_manually", object_id=str(lead.pk))
    assert entry.actor == user
    assert entry.ip == "198.51.100.20"


def test_redistributing_an_accepted_lead_is_refused_with_a_message(console, client, marketplace):
    _, _, leads = marketplace
    console("operations")

    response = run_action(client, LEADS, "redistribute", [leads[0].pk], follow=True)

    assert "cannot be distributed" in response.content.decode()
    assert Lead.objects.get(pk=leads[0].pk).status == LeadStatus.ACCEPTED


def test_suspend_action_moves_live_offers_and_reactivate_puts_the_agency_back(console, client, marketplace):
    _, second, _ = marketplace
    console("support")
    assert Offer.objects.live().filter(agency=second).exists()

    run_action(client, AGENCIES, "suspend", [second.pk], REMOTE_ADDR="198.51.100.21")

    assert Agency.objects.get(pk=second.pk).status == AgencyStatus.SUSPENDED
    assert not Offer.objects.live().filter(agency=second).exists()
    assert Offer.objects.filter(agency=second, status=OfferStatus.WITHDRAWN).exists()
    assert AuditLog.objects.get(action="agency.suspended", object_id=str(second.pk)).ip == "198.51.100.21"

    run_action(client, AGENCIES, "reactivate", [second.pk])

    assert Agency.objects.get(pk=second.pk).status == AgencyStatus.ACTIVE
    assert AuditLog.objects.filter(action="agency.reactivated", object_id=str(second.pk)).exists()


def test_agency_status_is_not_an_editable_field(console, client, marketplace):
    first, _, _ = marketplace
    console("superadmin")

    page = client.get(f"{AGENCIES}{first.pk}/change/").content.decode()

    assert 'name="status"' not in page
    assert 'name="business_name"' in page


def test_viewer_can_look_but_not_change(console, client, marketplace):
    first, _, leads = marketplace
    console("viewer")

    page = client.get(f"{AGENCIES}{first.pk}/change/")
    listing = client.get(AGENCIES).content.decode()
    change = client.post(f"{AGENCIES}{first.pk}/change/", {"business_name": "Hacked"})
    run_action(client, AGENCIES, "suspend", [first.pk])
    run_action(client, LEADS, "redistribute", [leads[1].pk])

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert 'value="suspend"' not in listing
    assert change.status_code == 403
    assert Agency.objects.get(pk=first.pk).business_name == "First"
    assert Agency.objects.get(pk=first.pk).status == AgencyStatus.ACTIVE
    assert not AuditLog.objects.filter(action="lead.distributed_manually").exists()


def test_dashboard_shows_the_figures_with_a_chart_for_staff_who_read_leads(console, client, marketplace):
    console("viewer")

    index = client.get("/admin/").content.decode()
    response = client.get(DASHBOARD)
    html = response.content.decode()

    assert DASHBOARD in index
    assert response.status_code == 200
    assert "<svg" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # the CSP allows no inline script
    assert "Top ZIP codes this week" in html
    assert "10001" in html
    assert "test-portal" in html


def test_dashboard_needs_the_view_lead_permission(client, roles):
    client.force_login(staff_with_role(roles["viewer"]))
    roles["viewer"].permissions.remove(*roles["viewer"].permissions.filter(codename="view_lead"))

    assert client.get(DASHBOARD).status_code == 403
    assert DASHBOARD not in client.get("/admin/").content.decode()


def test_dashboard_figures_count_today_and_this_week(marketplace):
    now = timezone.now()
    LeadFactory(received_at=now - timedelta(days=40), zipcode="90210")  # outside both windows
    unassigned = LeadFactory(zipcode="90210")
    distribute_lead(lead_id=unassigned.pk, now=now)

    figures = selectors.dashboard_figures(now=timezone.now())

    today, week = figures.windows
    assert (today.received, today.offered, today.accepted, today.unassigned) == (4, 3, 1, 1)
    assert week.received >= today.received
    assert figures.top_zipcodes[0] == {"zipcode": "10001", "received": 3, "accepted": 1}
    assert [(row["portal_code"], row["today"], row["week"]) for row in figures.portals] == [("test-portal", 4, 4)]
    assert figures.days[-1]["received"] == 4
    assert len(figures.days) == 14


def test_dashboard_query_count_does_not_grow_with_leads(console, client, marketplace):
    console("viewer")
    with CaptureQueriesContext(connection) as few:
        client.get(DASHBOARD)
    LeadFactory.create_batch(10, zipcode="10002", portal=PortalFactory(code="other"))

    with CaptureQueriesContext(connection) as many:
        client.get(DASHBOARD)

    assert len(many) == len(few)
