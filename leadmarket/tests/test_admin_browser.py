"""The admin console in a real headless browser: Debian's chromium driven by Playwright.

Logs in as an operations user, opens the leads list, filters it, redistributes a lead
with the admin action and opens the dashboard. Screenshots go to test-artifacts/.
`.ci/run` installs chromium; without it the test is skipped, saying so.
"""

import shutil
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from agencies.tests.factories import PASSWORD
from conftest import staff_with_role
from leads import distribution
from leads.models import Offer
from leads.tests.factories import LeadFactory, distribute_lead, subscribed_agency

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 15_000

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no headless browser: {CHROMIUM} is missing (.ci/run installs Debian's chromium package)",
    ),
]


@pytest.fixture
def page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are synchronous and safe. Only for this test, never leaked to
    # the processes other tests start (`check --deploy` refuses the variable).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()
            # ORM calls made while Playwright's loop runs get their own connection: close it here.
            connections.close_all()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)


def test_staff_log_in_filter_leads_redistribute_one_and_open_the_dashboard(live_server, roles, page):
    user = staff_with_role(roles["operations"], email="ops@example.com")
    first = subscribed_agency("10001", business_name="First Agency")
    second = subscribed_agency("10001", business_name="Second Agency")
    leads = LeadFactory.create_batch(3)
    for lead in leads:
        distribute_lead(lead_id=lead.pk, now=timezone.now())
    distribution.accept_offer(agency=first, lead_id=leads[0].pk, now=timezone.now())
    LeadFactory(zipcode="90210")  # never distributed: stays `new`
    target = leads[1]  # offered to the second agency
    assert Offer.objects.live().get(lead=target).agency_id == second.pk

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard-link")
    shot(page, "1-index")

    page.click("#nav-sidebar a[href='/admin/leads/lead/'], #content-main a[href='/admin/leads/lead/']")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 4
    shot(page, "2-leads")

    page.click("#changelist-filter a[href*='status__exact=offered']")
    page.wait_for_url("**status__exact=offered**")
    assert page.locator("#result_list tbody tr").count() == 2
    shot(page, "3-leads-offered")

    page.check(f"input[name=_selected_action][value='{target.pk}']")
    page.select_option("select[name=action]", "redistribute")
    page.click("button[name=index]")
    message = page.wait_for_selector("ul.messagelist li.success")
    assert f"Lead {target.pk} offered to First Agency" in message.inner_text()
    shot(page, "4-redistributed")

    page.goto(f"{live_server.url}/admin/")
    page.click("#dashboard-link a")
    page.wait_for_selector("svg.dashboard-chart")
    received_today = page.locator("#window-1 tr:has-text('Leads received') td").inner_text()
    shot(page, "5-dashboard")

    assert received_today.strip() == "4"
    assert Offer.objects.live().get(lead=target).agency_id == first.pk
    assert page.locator("svg.dashboard-chart rect.received").count() == 14
