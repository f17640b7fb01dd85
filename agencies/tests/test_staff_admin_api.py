import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agencies.authentication import Realm
from agencies.models import User
from agencies.tests.factories import PASSWORD, StaffUserFactory
from audit.models import AuditLog
from conftest import client_for

pytestmark = pytest.mark.django_db

USERS = "/api/admin/users"
ROLES = "/api/admin/roles"


@pytest.fixture
def superadmin_client():
    return client_for(StaffUserFactory(is_superuser=True), Realm.STAFF)


def test_create_role_with_permission_codes(superadmin_client):
    response = superadmin_client.post(ROLES, {"name": "billing", "permissions": ["agencies.view_agency"]})

    assert response.status_code == 201
    assert response.json()["data"]["permissions"] == ["agencies.view_agency"]
    assert Group.objects.get(name="billing").permissions.get().codename == "view_agency"
    assert AuditLog.objects.filter(action="role.created").exists()


def test_unknown_permission_code_is_400(superadmin_client):
    response = superadmin_client.post(ROLES, {"name": "x", "permissions": ["agencies.view_agency", "nope.fly"]})

    assert response.status_code == 400
    assert "nope.fly" in response.json()["errors"]["permissions"][0]
    assert not Group.objects.filter(name="x").exists()


def test_create_staff_user_with_role_never_returns_the_hash(superadmin_client, api_client):
    Group.objects.get_or_create(name="viewer")

    response = superadmin_client.post(USERS, {"email": "Ops@Example.com", "password": PASSWORD, "role": "viewer"})

    data = response.json()["data"]
    assert response.status_code == 201
    assert data["roles"] == ["viewer"]
    assert "password" not in data
    assert User.objects.get(email="ops@example.com").is_staff
    login = api_client.post("/api/admin/auth/login", {"email": "ops@example.com", "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["data"]["user"]["last_login"] is not None


def test_a_role_can_be_given_by_id(superadmin_client):
    role = Group.objects.get(name="support")

    response = superadmin_client.post(USERS, {"email": "s@example.com", "password": PASSWORD, "role": role.pk})

    assert response.status_code == 201
    assert response.json()["data"]["roles"] == ["support"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com", "password": "short", "role": "viewer"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "role": "ghost"}, "role"),
        ({"email": "not-an-email", "password": PASSWORD, "role": "viewer"}, "email"),
    ],
)
def test_bad_staff_user_input_is_400_on_the_field(superadmin_client, body, field):
    Group.objects.get_or_create(name="viewer")

    response = superadmin_client.post(USERS, body)

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_staff_user_list_query_count_does_not_grow(superadmin_client):
    role, _ = Group.objects.get_or_create(name="viewer")
    with CaptureQueriesContext(connection) as few:
        superadmin_client.get(USERS)
    for _ in range(10):
        StaffUserFactory().groups.add(role)

    with CaptureQueriesContext(connection) as many:
        response = superadmin_client.get(USERS)

    assert response.json()["data"]["count"] == 11
    assert len(many) == len(few)


def test_role_list_query_count_does_not_grow(superadmin_client):
    Group.objects.create(name="first").permissions.set(Permission.objects.all()[:1])
    with CaptureQueriesContext(connection) as few:
        superadmin_client.get(ROLES)
    for n in range(5):
        Group.objects.create(name=f"r{n}").permissions.set(Permission.objects.all()[:3])

    with CaptureQueriesContext(connection) as many:
        superadmin_client.get(ROLES)

    assert len(many) == len(few)


def test_users_and_roles_need_their_permissions(staff_client):
    assert staff_client.get(USERS).status_code == 403
    assert staff_client.post(ROLES, {"name": "x", "permissions": []}).status_code == 403


def test_staff_cannot_grant_permissions_they_do_not_hold():
    creator = StaffUserFactory()
    creator.user_permissions.add(*Permission.objects.filter(codename__in=["add_user", "add_group", "view_lead"]))
    client = client_for(creator, Realm.STAFF)

    stronger_role = client.post(ROLES, {"name": "mine", "permissions": ["leads.view_lead", "leads.distribute_lead"]})
    superadmin = client.post(USERS, {"email": "boss@example.com", "password": PASSWORD, "role": "superadmin"})
    own_level = client.post(ROLES, {"name": "readers", "permissions": ["leads.view_lead"]})

    assert stronger_role.status_code == 403
    assert superadmin.status_code == 403
    assert not User.objects.filter(email="boss@example.com").exists()
    assert own_level.status_code == 201
