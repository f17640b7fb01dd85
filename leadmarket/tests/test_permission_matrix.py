"""Every admin API operation in the OpenAPI schema, called as every kind of caller.

What each role may do is derived from the view's `required_permissions` and the role's
permissions in the database, so the table in the README, the views and the roles cannot
drift apart: a new /api/admin/ endpoint that does not declare a permission for each of its
methods fails here.
"""

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from agencies.authentication import Realm
from agencies.tests.factories import StaffUserFactory
from conftest import ROLE_NAMES, client_for, staff_with_role
from leadmarket.api.access import ANY_STAFF, StaffAPIView

pytestmark = pytest.mark.django_db

PUBLIC = {"/api/admin/auth/login", "/api/admin/auth/refresh"}
METHODS = ("get", "post", "put", "patch", "delete")
ABSENT_ID = "999999"  # permission is checked before the lookup, so a 404 means "allowed"


def admin_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (path, method.upper())
        for path, operations in schema["paths"].items()
        if path.startswith("/api/admin/") and path not in PUBLIC
        for method in operations
        if method in METHODS
    )


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", ABSENT_ID, path)


def view_of(path: str):
    return resolve(concrete(path)).func.cls


def call(client: APIClient, path: str, method: str):
    return getattr(client, method.lower())(concrete(path), {} if method != "GET" else None, format="json")


def as_codes(permissions) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in permissions.select_related("content_type")}


def codes_of(user) -> set[str]:
    if user.is_superuser:
        return as_codes(Permission.objects)
    return set(user.get_all_permissions())


@pytest.fixture(scope="module")
def operations():
    return admin_operations()


def test_every_admin_operation_declares_a_permission_for_its_method(operations):
    undeclared = [
        f"{method} {path}"
        for path, method in operations
        if not issubclass(view_of(path), StaffAPIView) or method not in view_of(path).required_permissions
    ]

    assert len(operations) >= 20
    assert ("/api/admin/agencies/{id}", "PUT") in operations
    assert undeclared == []


def test_anonymous_callers_get_401_everywhere(operations, api_client):
    outcomes = {f"{method} {path}": call(api_client, path, method).status_code for path, method in operations}

    assert {key: status for key, status in outcomes.items() if status != 401} == {}


def test_agency_tokens_get_401_everywhere(operations, agency_client):
    outcomes = {f"{method} {path}": call(agency_client, path, method).status_code for path, method in operations}

    assert {key: status for key, status in outcomes.items() if status != 401} == {}


@pytest.mark.parametrize("caller", [*ROLE_NAMES, "staff without a role", "django superuser"])
def test_each_role_is_allowed_exactly_what_its_permissions_say(operations, roles, caller):
    if caller in roles:
        user = staff_with_role(roles[caller])
    else:
        user = StaffUserFactory(is_superuser=caller == "django superuser")
    granted = codes_of(user)
    client = client_for(user, Realm.STAFF)
    wrong = {}

    for path, method in operations:
        needed = view_of(path).required_permissions[method]
        allowed = needed == ANY_STAFF or needed in granted
        status = call(client, path, method).status_code
        if (allowed and status in (401, 403)) or (not allowed and status != 403):
            wrong[f"{method} {path}"] = (needed, status)

    assert wrong == {}


def test_roles_hold_the_documented_permission_sets(roles):
    def codes(name):
        return {
            f"{p.content_type.app_label}.{p.codename}" for p in roles[name].permissions.select_related("content_type")
        }

    everything = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}
    viewer, support, operations = codes("viewer"), codes("support"), codes("operations")

    assert codes("superadmin") == everything
    assert viewer
    assert all(code.split(".")[1].startswith("view_") for code in viewer)
    assert not any(code.startswith("token_blacklist.") for code in viewer)
    assert support - viewer == {"agencies.change_agency", "leads.distribute_lead"}
    assert viewer <= operations
    assert {"leads.distribute_lead", "portals.rotate_portal_key", "portals.replay_reception"} <= operations
    assert {"agencies.change_agency", "portals.add_portal"} <= operations
    assert not {"subscriptions.add_plan", "agencies.add_user", "auth.add_group", "audit.change_auditlog"} & operations
