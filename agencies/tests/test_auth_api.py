import threading
from datetime import timedelta

import pytest
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from agencies.authentication import Realm, issue_tokens
from agencies.models import Agency, AgencyStatus, User
from agencies.tests.factories import PASSWORD, AgencyFactory
from audit.models import AuditLog
from conftest import assert_failure, assert_success, client_for

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/agencies/register"
LOGIN = "/api/v1/agencies/login"
REFRESH = "/api/v1/agencies/token/refresh"
PROFILE = "/api/v1/agencies/profile"
ADMIN_LOGIN = "/api/admin/auth/login"
ADMIN_ME = "/api/admin/auth/me"


def register(api_client, **overrides):
    body = {"email": "Owner@Example.com", "password": PASSWORD, "business_name": "Acme Leads"} | overrides
    return api_client.post(REGISTER, body, format="json")


def test_register_creates_active_agency_and_returns_working_tokens(api_client):
    data = assert_success(register(api_client, phone="(212) 456-7890"), 201)

    assert set(data) == {"access", "refresh", "agency"}
    assert data["agency"]["email"] == "owner@example.com"
    assert data["agency"]["business_name"] == "Acme Leads"
    assert data["agency"]["status"] == "active"
    assert data["agency"]["phone"] == "+12124567890"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {data['access']}")
    assert assert_success(api_client.get(PROFILE), 200)["id"] == data["agency"]["id"]
    assert AuditLog.objects.filter(action="agency.registered", object_id=str(data["agency"]["id"])).exists()


def test_register_requires_approval_when_configured(api_client, settings):
    settings.AGENCY_REQUIRES_APPROVAL = True

    data = assert_success(register(api_client), 201)

    assert data["agency"]["status"] == "pending"


def test_password_is_hashed_with_argon2(api_client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]

    assert_success(register(api_client), 201)

    assert User.objects.get().password.startswith("argon2")


def test_duplicate_email_is_400_on_email_whatever_the_case(api_client):
    assert_success(register(api_client), 201)

    body = assert_failure(register(api_client, email="OWNER@example.com"), 400)

    assert "email" in body["errors"]
    assert User.objects.count() == 1


def test_weak_password_is_400_on_password(api_client):
    body = assert_failure(register(api_client, password="password"), 400)

    assert "password" in body["errors"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("business_name", "x" * 201), ("email", "a" * 250 + "@example.com"), ("phone", "12"), ("email", "nope")],
)
def test_invalid_registration_fields_are_400_on_the_field(api_client, field, value):
    body = assert_failure(register(api_client, **{field: value}), 400)

    assert field in body["errors"]
    assert not User.objects.exists()


def test_nul_byte_in_a_string_is_400(api_client):
    body = assert_failure(register(api_client, business_name="Acme\x00Leads"), 400)

    assert "business_name" in body["errors"]
    assert not Agency.objects.exists()


def test_login_returns_tokens_and_agency(api_client, agency):
    data = assert_success(api_client.post(LOGIN, {"email": agency.user.email, "password": PASSWORD}), 200)

    assert data["agency"]["id"] == agency.id
    assert AccessToken(data["access"])["realm"] == "agency"


def test_wrong_password_and_unknown_email_get_the_same_401(api_client, agency):
    wrong_password = assert_failure(api_client.post(LOGIN, {"email": agency.user.email, "password": "nope"}), 401)
    unknown_email = assert_failure(api_client.post(LOGIN, {"email": "who@example.com", "password": PASSWORD}), 401)

    assert wrong_password["message"] == unknown_email["message"]
    assert wrong_password["errors"] == unknown_email["errors"] == {}


def test_access_token_lives_fifteen_minutes_at_most(api_client, agency):
    data = assert_success(api_client.post(LOGIN, {"email": agency.user.email, "password": PASSWORD}), 200)

    token = AccessToken(data["access"])
    assert token["exp"] - token["iat"] <= 15 * 60


def test_repeated_failed_logins_are_throttled_with_retry_after(api_client, agency, settings):
    settings.LOGIN_FAILURE_RATE = "3/5m"
    for _ in range(3):
        assert_failure(api_client.post(LOGIN, {"email": agency.user.email, "password": "wrong"}), 401)

    response = api_client.post(LOGIN, {"email": agency.user.email, "password": PASSWORD})

    assert_failure(response, 429)
    assert 1 <= int(response["Retry-After"]) <= 300


def test_failed_logins_from_one_address_are_throttled_across_accounts(api_client, settings):
    settings.LOGIN_FAILURE_RATE_PER_IP = "3/5m"
    for n in range(3):
        assert_failure(api_client.post(LOGIN, {"email": f"x{n}@example.com", "password": "wrong"}), 401)

    response = api_client.post(LOGIN, {"email": "x9@example.com", "password": "wrong"})

    assert_failure(response, 429)
    assert int(response["Retry-After"]) >= 1


@pytest.mark.parametrize("authorization", [None, "Bearer garbage", "Bearer ", "Token abc", "Bearer a.b.c"])
def test_missing_or_garbage_token_is_401(api_client, authorization):
    if authorization is not None:
        api_client.credentials(HTTP_AUTHORIZATION=authorization)

    assert_failure(api_client.get(PROFILE), 401)


def test_expired_token_is_401(api_client, agency):
    token = AccessToken.for_user(agency.user)
    token["realm"] = "agency"
    token.set_exp(lifetime=-timedelta(seconds=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_failure(api_client.get(PROFILE), 401)


def test_refresh_rotates_and_the_used_refresh_token_is_refused(api_client, agency):
    tokens = issue_tokens(agency.user, Realm.AGENCY)

    fresh = assert_success(api_client.post(REFRESH, {"refresh": tokens["refresh"]}), 200)
    reused = api_client.post(REFRESH, {"refresh": tokens["refresh"]})

    assert fresh["refresh"] != tokens["refresh"]
    assert_failure(reused, 401)
    assert_success(api_client.post(REFRESH, {"refresh": fresh["refresh"]}), 200)


@pytest.mark.django_db(transaction=True)
def test_concurrent_reuse_of_a_refresh_token_succeeds_once():
    agency = AgencyFactory()
    refresh = issue_tokens(agency.user, Realm.AGENCY)["refresh"]
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def use():
        from rest_framework.test import APIClient

        barrier.wait()
        statuses.append(APIClient().post(REFRESH, {"refresh": refresh}, format="json").status_code)
        connection.close()

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 401, 401, 401]


def test_suspended_agency_is_refused_on_next_request_and_on_refresh(api_client, agency):
    tokens = issue_tokens(agency.user, Realm.AGENCY)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert_success(api_client.get(PROFILE), 200)

    Agency.objects.filter(pk=agency.pk).update(status=AgencyStatus.SUSPENDED)

    assert_failure(api_client.get(PROFILE), 401)
    assert_failure(api_client.post(REFRESH, {"refresh": tokens["refresh"]}), 401)
    assert_failure(api_client.post(LOGIN, {"email": agency.user.email, "password": PASSWORD}), 401)


def test_deactivated_user_is_refused(api_client, agency):
    client = client_for(agency.user, Realm.AGENCY)
    User.objects.filter(pk=agency.user.pk).update(is_active=False)

    assert_failure(client.get(PROFILE), 401)


@pytest.mark.parametrize("user_id", ["deleted", None, "not-a-number", ["a", "list"]])
def test_a_signed_token_without_a_live_user_is_401(api_client, agency, user_id):
    token = AccessToken.for_user(agency.user)
    token["realm"] = "agency"
    if user_id == "deleted":
        agency.delete()
        agency.user.delete()
    else:
        token["user_id"] = user_id
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = assert_failure(api_client.get(PROFILE), 401)
    assert response["message"] == "The token's account does not exist."


def test_refresh_with_garbage_is_401(api_client):
    assert_failure(api_client.post(REFRESH, {"refresh": "garbage"}), 401)


def test_agency_token_is_refused_on_admin_paths(agency_client):
    assert_failure(agency_client.get(ADMIN_ME), 401)


def test_staff_token_is_refused_on_mobile_paths(staff_client):
    assert_failure(staff_client.get(PROFILE), 401)


def test_staff_login_returns_tokens_and_user(api_client, staff_user):
    data = assert_success(api_client.post(ADMIN_LOGIN, {"email": staff_user.email, "password": PASSWORD}), 200)

    assert data["user"]["email"] == staff_user.email
    assert "password" not in data["user"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {data['access']}")
    assert assert_success(api_client.get(ADMIN_ME), 200)["id"] == staff_user.id


def test_agency_credentials_are_401_on_staff_login(api_client, agency):
    body = assert_failure(api_client.post(ADMIN_LOGIN, {"email": agency.user.email, "password": PASSWORD}), 401)

    assert body["message"] == "Invalid email or password."


def test_staff_refresh_keeps_the_staff_realm(api_client, staff_user):
    tokens = issue_tokens(staff_user, Realm.STAFF)

    data = assert_success(api_client.post("/api/admin/auth/refresh", {"refresh": tokens["refresh"]}), 200)

    assert AccessToken(data["access"])["realm"] == "staff"


def test_profile_put_and_patch_change_editable_fields(agency_client, agency):
    put = assert_success(agency_client.put(PROFILE, {"business_name": "New Name", "phone": "+1 212 456 7890"}), 200)
    patch = assert_success(agency_client.patch(PROFILE, {"accepting_leads": False}), 200)

    assert put["business_name"] == "New Name"
    assert put["phone"] == "+12124567890"
    assert patch["accepting_leads"] is False
    assert patch["business_name"] == "New Name"
    assert AuditLog.objects.filter(action="agency.profile_updated").count() == 2


def test_put_profile_requires_business_name(agency_client):
    body = assert_failure(agency_client.put(PROFILE, {"contact_name": "X"}), 400)

    assert "business_name" in body["errors"]


@pytest.mark.parametrize("field", ["status", "email", "id"])
def test_profile_refuses_fields_that_are_not_editable(agency_client, agency, field):
    body = assert_failure(agency_client.patch(PROFILE, {field: "suspended"}), 400)

    assert field in body["errors"]
    agency.refresh_from_db()
    assert agency.status == AgencyStatus.ACTIVE


def test_paths_work_with_a_trailing_slash(agency_client):
    assert_success(agency_client.get(PROFILE + "/"), 200)


def test_failures_from_strangers_do_not_lock_the_owner_out(api_client, agency, settings):
    settings.LOGIN_FAILURE_RATE = "3/5m"
    for n in range(3):
        api_client.post(LOGIN, {"email": agency.user.email, "password": "wrong"}, REMOTE_ADDR=f"198.51.100.{n}")
        api_client.post(LOGIN, {"email": agency.user.email, "password": "wrong"}, REMOTE_ADDR="198.51.100.9")

    stranger = api_client.post(LOGIN, {"email": agency.user.email, "password": "wrong"}, REMOTE_ADDR="198.51.100.9")
    owner = api_client.post(LOGIN, {"email": agency.user.email, "password": PASSWORD}, REMOTE_ADDR="203.0.113.5")

    assert stranger.status_code == 429
    assert owner.status_code == 200


def test_a_distributed_guess_at_one_account_is_throttled(api_client, agency, settings):
    settings.LOGIN_FAILURE_RATE_PER_ACCOUNT = "4/h"
    for n in range(4):
        api_client.post(LOGIN, {"email": agency.user.email, "password": "wrong"}, REMOTE_ADDR=f"198.51.100.{n}")

    response = api_client.post(LOGIN, {"email": agency.user.email, "password": "wrong"}, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 429
