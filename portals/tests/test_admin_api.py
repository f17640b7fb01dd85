"""Staff API of portals: CRUD, keys, preview, receptions, replay, permissions."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agencies.authentication import Realm
from audit.models import AuditLog
from conftest import client_for
from leads.models import Lead
from portals.models import Portal, PortalKey, Reception
from portals.tests.factories import make_portal
from portals.tests.helpers import LEAD, assert_failure, assert_success, post_json

pytestmark = pytest.mark.django_db

PORTALS = "/api/admin/portals"
ALL_PERMS = [
    "view_portal",
    "add_portal",
    "change_portal",
    "rotate_portal_key",
    "preview_portal_mapping",
    "view_reception",
    "replay_reception",
]


@pytest.fixture
def staff(staff_user):
    staff_user.user_permissions.add(*Permission.objects.filter(codename__in=ALL_PERMS))
    return client_for(staff_user, Realm.STAFF)


MAPPING = {"fields": {"zipcode": {"path": "answers", "pick": {"key": "id", "equals": "zip"}}, "email": "contact.email"}}


def test_create_returns_the_key_once_and_it_works(staff, api_client):
    data = assert_success(
        staff.post(PORTALS, {"code": "fb", "name": "Facebook", "mapping": MAPPING}, format="json"), 201
    )

    key = data["api_key"]
    assert key.startswith("lmk_")
    assert len(key) > 40
    assert data["signing_secret"] is None
    assert data["portal"]["live_keys"][0]["prefix"] == key[:12]
    assert PortalKey.objects.get().key_hash != key
    listing = staff.get(PORTALS)
    assert key not in listing.content.decode()
    payload = {"answers": [{"id": "zip", "value": "10001"}], "contact": {"email": "a@x.com"}}
    assert_success(post_json(api_client, "fb", payload, key), 201)
    assert AuditLog.objects.filter(action="portal.created").exists()


def test_create_with_a_bad_mapping_is_400_listing_the_problems(staff):
    bad = {"fields": {"zipcode": {"path": "a", "transforms": ["rot13"]}, "nope": "x"}}

    body = assert_failure(staff.post(PORTALS, {"code": "bad", "name": "Bad", "mapping": bad}, format="json"), 400)

    assert len(body["errors"]["mapping"]) == 2
    assert not Portal.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": "has space"}, "code"),
        ({"rate_limit": "lots"}, "rate_limit"),
        ({"key_location": "body_field"}, "key_field"),
        ({"key_location": "none"}, "key_location"),
        ({"signature_scheme": "single_header"}, "signature_header"),
        ({"signature_scheme": "standard_webhooks", "signing_secret": "plain"}, "signing_secret"),
        ({"mapping": [1]}, "mapping"),
    ],
)
def test_create_validates_the_configuration(staff, change, field):
    body = assert_failure(staff.post(PORTALS, {"code": "p", "name": "P"} | change, format="json"), 400)

    assert field in body["errors"]


def test_duplicate_code_is_400(staff):
    make_portal("taken")

    assert "code" in assert_failure(staff.post(PORTALS, {"code": "taken", "name": "T"}, format="json"), 400)["errors"]


def test_list_is_paginated_and_its_query_count_does_not_grow(staff):
    make_portal("a")
    with CaptureQueriesContext(connection) as few:
        assert_success(staff.get(PORTALS), 200)
    for code in "bcdef":
        make_portal(code)

    with CaptureQueriesContext(connection) as many:
        data = assert_success(staff.get(PORTALS), 200)

    assert data["count"] == 6
    assert [portal["code"] for portal in data["results"]] == list("abcdef")
    assert len(many) == len(few)


def test_update_changes_mapping_and_takes_effect_at_once(staff, api_client):
    portal, key = make_portal("upd")
    payload = {"contact": {"email": "a@x.com"}, "zip": "10001"}
    assert_failure(post_json(api_client, "upd", payload, key), 400)

    mapping = {"fields": {"email": "contact.email", "zipcode": "zip"}}
    data = assert_success(
        staff.put(f"{PORTALS}/{portal.pk}", {"mapping": mapping, "rate_limit": "10/s"}, format="json"), 200
    )

    assert data["mapping"] == mapping
    assert data["rate_limit"] == "10/s"
    assert_success(post_json(api_client, "upd", payload, key), 201)
    assert AuditLog.objects.filter(action="portal.updated", object_id=str(portal.pk)).exists()


def test_update_with_bad_mapping_is_400_and_unknown_portal_404(staff):
    portal, _ = make_portal("upd")

    body = assert_failure(
        staff.put(f"{PORTALS}/{portal.pk}", {"mapping": {"fields": {"email": 3}}}, format="json"), 400
    )

    assert body["errors"]["mapping"]
    assert_failure(staff.put(f"{PORTALS}/999999", {"name": "x"}, format="json"), 404)
    assert_failure(staff.get(f"{PORTALS}/999999"), 404)


def test_deactivating_a_portal_makes_its_webhook_404(staff, api_client):
    portal, key = make_portal("off")

    assert_success(staff.put(f"{PORTALS}/{portal.pk}", {"is_active": False}, format="json"), 200)

    assert_failure(post_json(api_client, "off", LEAD, key), 404)


def test_rotation_keeps_two_live_keys_and_revokes_the_oldest(staff, api_client):
    portal, first = make_portal("rot")

    second = assert_success(staff.post(f"{PORTALS}/{portal.pk}/rotate-key", {}, format="json"), 201)["api_key"]
    assert_success(post_json(api_client, "rot", LEAD | {"external_id": "1"}, first), 201)
    assert_success(
        post_json(api_client, "rot", LEAD | {"external_id": "2", "phone": "2125550111", "email": "b@x.com"}, second),
        201,
    )
    third = assert_success(staff.post(f"{PORTALS}/{portal.pk}/rotate-key", {}, format="json"), 201)

    assert_failure(post_json(api_client, "rot", LEAD | {"external_id": "3"}, first), 401)
    assert [k["prefix"] for k in third["portal"]["live_keys"]] == [third["api_key"][:12], second[:12]]
    assert AuditLog.objects.filter(action="portal.key_rotated").count() == 2


def test_rotation_with_revoke_previous_kills_every_old_key(staff, api_client):
    portal, first = make_portal("rot")

    new = assert_success(
        staff.post(f"{PORTALS}/{portal.pk}/rotate-key", {"revoke_previous": True}, format="json"), 201
    )["api_key"]

    assert_failure(post_json(api_client, "rot", LEAD, first), 401)
    assert_success(post_json(api_client, "rot", LEAD, new), 201)


def test_preview_shows_the_lead_or_the_errors_and_creates_nothing(staff):
    portal, _ = make_portal("pre", mapping=MAPPING)
    good = {"answers": [{"id": "zip", "value": "10001"}], "contact": {"email": "A@Example.com"}, "x": 1}
    url = f"{PORTALS}/{portal.pk}/preview"

    ok = assert_success(staff.post(url, {"payload": good}, format="json"), 200)
    bad = assert_success(staff.post(url, {"payload": {"answers": []}}, format="json"), 200)
    other = assert_success(
        staff.post(
            url,
            {"payload": {"mail": "a@x.com", "z": "10001"}, "mapping": {"fields": {"email": "mail", "zipcode": "z"}}},
            format="json",
        ),
        200,
    )
    broken = assert_failure(staff.post(url, {"payload": {}, "mapping": {"fields": {"x": "y"}}}, format="json"), 400)

    assert ok["valid"] is True
    assert ok["lead"]["email"] == "A@example.com"
    assert ok["lead"]["city"] == "New York"
    assert ok["lead"]["details"] == {"x": 1}
    assert bad["valid"] is False
    assert "zipcode" in bad["errors"]
    assert other["valid"] is True
    assert broken["errors"]["mapping"]
    assert not Lead.objects.exists()
    assert not Reception.objects.exists()


def test_receptions_list_filters_and_keeps_its_query_count(staff, api_client):
    portal, key = make_portal("rec")
    url = f"{PORTALS}/{portal.pk}/receptions"
    assert_success(post_json(api_client, "rec", LEAD, key), 201)
    with CaptureQueriesContext(connection) as few:
        assert_success(staff.get(url), 200)
    for number in range(5):
        post_json(api_client, "rec", LEAD | {"external_id": f"n{number}", "zipcode": "1"}, key)
    post_json(api_client, "rec", LEAD, "bad")

    with CaptureQueriesContext(connection) as many:
        everything = assert_success(staff.get(url), 200)
    invalid = assert_success(staff.get(url, {"outcome": "invalid"}), 200)
    unauthorized = assert_success(staff.get(url, {"status": 401}), 200)
    future = assert_success(staff.get(url, {"received_after": "2999-01-01T00:00:00Z"}), 200)
    past = assert_success(staff.get(url, {"received_before": "2999-01-01T00:00:00Z"}), 200)

    assert len(many) == len(few)
    assert everything["count"] == 7
    assert everything["results"][0]["outcome"] == "unauthorized"  # newest first
    assert (invalid["count"], unauthorized["count"], future["count"], past["count"]) == (5, 1, 0, 7)
    assert_failure(staff.get(url, {"outcome": "bogus"}), 400)
    assert_failure(staff.get(f"{PORTALS}/999999/receptions"), 404)


def test_replay_after_fixing_the_mapping_produces_the_lead(staff, api_client):
    portal, key = make_portal("fix")
    payload = {"contact": {"email": "a@x.com"}, "zip": "10001"}
    assert_failure(post_json(api_client, "fix", payload, key), 400)
    failed = Reception.objects.get()
    replay_url = f"/api/admin/receptions/{failed.pk}/replay"

    still = assert_failure(staff.post(replay_url, {}, format="json"), 400)
    staff.put(
        f"{PORTALS}/{portal.pk}", {"mapping": {"fields": {"email": "contact.email", "zipcode": "zip"}}}, format="json"
    )
    data = assert_success(staff.post(replay_url, {}, format="json"), 201)

    assert "zipcode" in still["errors"]
    lead = Lead.objects.get(pk=data["lead_id"])
    assert (lead.email, lead.zipcode, lead.status) == ("a@x.com", "10001", "new")
    assert data["reception"]["replay_of"] == failed.pk
    assert AuditLog.objects.filter(action="reception.replayed", object_id=str(failed.pk)).count() == 2


def test_replay_is_refused_for_receptions_without_a_usable_payload(staff, api_client):
    _, key = make_portal("rep")
    post_json(api_client, "rep", LEAD, "bad")
    post_json(api_client, "rep", LEAD, key)

    for reception in Reception.objects.order_by("id"):
        assert_failure(staff.post(f"/api/admin/receptions/{reception.pk}/replay", {}, format="json"), 409)
    assert_failure(staff.post("/api/admin/receptions/999999/replay", {}, format="json"), 404)


@pytest.mark.parametrize(
    ("method", "path", "perm"),
    [
        ("get", PORTALS, "view_portal"),
        ("post", PORTALS, "add_portal"),
        ("put", PORTALS + "/{id}", "change_portal"),
        ("post", PORTALS + "/{id}/rotate-key", "rotate_portal_key"),
        ("post", PORTALS + "/{id}/preview", "preview_portal_mapping"),
        ("get", PORTALS + "/{id}/receptions", "view_reception"),
    ],
)
def test_each_action_needs_its_permission(staff_user, agency_client, method, path, perm):
    portal, _ = make_portal("perm")
    url = path.format(id=portal.pk)
    without = client_for(staff_user, Realm.STAFF)
    staff_user.user_permissions.add(*Permission.objects.filter(codename__in=[c for c in ALL_PERMS if c != perm]))

    assert getattr(without, method)(url, {}, format="json").status_code == 403
    assert getattr(agency_client, method)(url, {}, format="json").status_code in (401, 403)


def test_replay_needs_its_permission(staff_user, api_client):
    _, key = make_portal("perm")
    post_json(api_client, "perm", LEAD | {"zipcode": "1"}, key)
    client = client_for(staff_user, Realm.STAFF)

    assert (
        client.post(f"/api/admin/receptions/{Reception.objects.get().pk}/replay", {}, format="json").status_code == 403
    )


def test_the_schema_documents_the_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]

    assert set(paths["/api/webhooks/{portal_code}"]["post"]["responses"]) >= {"200", "201", "401", "413", "415", "429"}
    for path in (
        "/api/admin/portals",
        "/api/admin/portals/{id}/rotate-key",
        "/api/admin/portals/{id}/preview",
        "/api/admin/portals/{id}/receptions",
        "/api/admin/receptions/{id}/replay",
    ):
        assert path in paths
