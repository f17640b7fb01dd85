import json

import pytest
from django.urls import reverse

from leads.models import Lead
from portals.models import Portal, PortalKey, Reception
from portals.tests.factories import make_portal
from portals.tests.helpers import LEAD, post_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    return client


def test_portal_pages_render_with_receptions(admin_client, api_client):
    portal, key = make_portal("adm")
    post_json(api_client, "adm", LEAD, key)

    assert admin_client.get(reverse("admin:portals_portal_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:portals_portal_change", args=[portal.pk]))
    assert page.status_code == 200
    assert "accepted" in page.content.decode()
    assert admin_client.get(reverse("admin:portals_reception_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:leads_lead_changelist")).status_code == 200


def test_admin_add_portal_validates_the_mapping_and_shows_the_key_once(admin_client):
    url = reverse("admin:portals_portal_add")
    form = {
        "code": "new",
        "name": "New",
        "is_active": "on",
        "default_lead_type": "",
        "rate_limit": "600/m",
        "duplicate_window_days": "30",
        "key_location": "header",
        "key_field": "",
        "json_form_field": "",
        "redact_fields": "[]",
        "signature_scheme": "none",
        "signature_header": "",
        "signature_encoding": "hex",
        "signature_prefix": "",
        "keys-TOTAL_FORMS": "0",
        "keys-INITIAL_FORMS": "0",
    }

    bad = admin_client.post(
        url, form | {"mapping": json.dumps({"fields": {"zipcode": {"path": "a", "transforms": ["x"]}}})}
    )
    good = admin_client.post(url, form | {"mapping": "{}"}, follow=True)

    assert "unknown transform" in bad.content.decode()
    assert PortalKey.objects.filter(portal__code="new").count() == 1
    assert "API key lmk_" in good.content.decode()


def test_admin_rotate_key_action(admin_client):
    portal, _ = make_portal("adm")

    response = admin_client.post(
        reverse("admin:portals_portal_changelist"),
        {"action": "rotate_key", "_selected_action": [portal.pk]},
        follow=True,
    )

    assert "API key lmk_" in response.content.decode()
    assert PortalKey.objects.filter(portal=portal, revoked_at__isnull=True).count() == 2


def test_admin_preview_page_shows_the_lead(admin_client):
    portal, _ = make_portal("adm")
    url = reverse("admin:portals_portal_preview", args=[portal.pk])

    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"payload": json.dumps(LEAD), "mapping": ""})

    assert "Valid lead" in response.content.decode()
    assert "+12125550100" in response.content.decode()
    assert not Lead.objects.exists()


def test_admin_replay_action(admin_client, api_client):
    portal, key = make_portal("adm")
    post_json(api_client, "adm", {"mail": "a@x.com", "zip": "10001"}, key)
    Portal.objects.filter(pk=portal.pk).update(mapping={"fields": {"email": "mail", "zipcode": "zip"}})

    admin_client.post(
        reverse("admin:portals_reception_changelist"),
        {"action": "replay", "_selected_action": [Reception.objects.get().pk]},
    )

    assert Lead.objects.get().email == "a@x.com"
