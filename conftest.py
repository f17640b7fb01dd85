"""Fixtures shared by every app's tests."""

import contextlib
import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.core.cache import cache
from rest_framework.test import APIClient

from agencies.authentication import Realm, issue_tokens
from agencies.tests.factories import AgencyFactory, StaffUserFactory
from leads.services import forget_queued_run
from portals.selectors import forget_all_portals


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings):
    # Argon2 is slow on purpose; its use is asserted in one test with the real setting.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    forget_all_portals()  # the per-process portal cache outlives a test's rolled-back database
    forget_queued_run()  # and so does what the process knows of the queued distribution run
    yield
    forget_all_portals()
    forget_queued_run()
    with contextlib.suppress(Exception):  # a test may have pointed the cache at a dead server
        cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient(raise_request_exception=False)


@pytest.fixture
def agency(db):
    return AgencyFactory()


def assert_success(response, status: int):
    """The `data` of a success envelope with `status`."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is True
    assert set(body) == {"success", "message", "data", "timestamp"}
    assert body["timestamp"].endswith("Z")
    return body["data"]


def assert_failure(response, status: int) -> dict:
    """The body of a failure envelope with `status`."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert set(body) == {"success", "message", "errors", "timestamp"}
    assert "Traceback" not in response.content.decode()
    return body


def client_for(user, realm: Realm) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_tokens(user, realm)['access']}")
    return client


@pytest.fixture
def agency_client(agency) -> APIClient:
    return client_for(agency.user, Realm.AGENCY)


@pytest.fixture
def staff_user(db):
    return StaffUserFactory()


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    return client_for(staff_user, Realm.STAFF)


ROLE_NAMES = ("superadmin", "operations", "support", "viewer")


@pytest.fixture
def roles(db) -> dict[str, Group]:
    """The staff roles of the data migration; installed again if a transactional test's
    flush removed them."""
    if Group.objects.filter(name__in=ROLE_NAMES).count() < len(ROLE_NAMES):
        importlib.import_module("agencies.migrations.0003_staff_roles").install_roles(django_apps)
    return {group.name: group for group in Group.objects.filter(name__in=ROLE_NAMES)}


def staff_with_role(role: Group, **fields):
    user = StaffUserFactory(**fields)
    user.groups.add(role)
    return user
