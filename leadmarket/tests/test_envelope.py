"""The envelope and error mapping that every /api/ endpoint shares."""

import pytest
from django.db import OperationalError

from agencies import services as agency_services
from agencies.models import Agency, User

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/agencies/register"
PROFILE = "/api/v1/agencies/profile"


def failure(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["errors"], dict)
    assert body["message"]
    assert "Traceback" not in response.content.decode()
    return body


def assert_nothing_stored():
    assert not User.objects.exists()
    assert not Agency.objects.exists()


def test_malformed_json_is_400(api_client):
    failure(api_client.post(REGISTER, '{"email": "a@b.c", ', content_type="application/json"), 400)

    assert_nothing_stored()


@pytest.mark.parametrize("body", ["[1, 2]", '"just a string"', "42", "null"])
def test_json_that_is_not_an_object_is_400(api_client, body):
    failure(api_client.post(REGISTER, body, content_type="application/json"), 400)

    assert_nothing_stored()


def test_non_json_content_type_is_415(api_client):
    failure(api_client.post(REGISTER, "email=a@b.c", content_type="text/plain"), 415)

    assert_nothing_stored()


def test_two_mebibyte_body_is_413(api_client):
    big = '{"business_name": "' + "x" * (2 * 1024 * 1024) + '"}'

    failure(api_client.post(REGISTER, big, content_type="application/json"), 413)

    assert_nothing_stored()


def test_unknown_api_path_is_an_enveloped_404(api_client):
    body = failure(api_client.get("/api/v1/nowhere"), 404)

    assert body["errors"] == {}


def test_wrong_method_is_an_enveloped_405(agency_client):
    failure(agency_client.delete(PROFILE), 405)


def test_unexpected_exception_is_a_json_500_without_trace(api_client, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(agency_services, "register_agency", explode)

    body = failure(
        api_client.post(REGISTER, {"email": "a@example.com", "password": "x" * 12, "business_name": "A"}), 500
    )

    assert "secret internals" not in str(body)


def test_database_unavailable_is_503_with_retry_after(api_client, monkeypatch):
    def unavailable(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(agency_services, "register_agency", unavailable)

    response = api_client.post(REGISTER, {"email": "a@example.com", "password": "x" * 12, "business_name": "A"})

    failure(response, 503)
    assert int(response["Retry-After"]) > 0


def test_validation_errors_list_every_field(api_client):
    body = failure(api_client.post(REGISTER, {}, format="json"), 400)

    assert set(body["errors"]) == {"email", "password", "business_name"}
    assert all(isinstance(messages, list) for messages in body["errors"].values())


def test_non_api_paths_keep_django_pages(client):
    response = client.get("/nowhere")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_unknown_api_path_is_json_even_in_debug(api_client, settings):
    settings.DEBUG = True

    failure(api_client.post("/api/admin/nowhere/at/all", {}), 404)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unknown_api_path_is_an_enveloped_404_for_every_method_even_with_csrf_checks(method):
    from django.test import Client

    response = getattr(Client(enforce_csrf_checks=True), method)("/api/nowhere", "{}", content_type="application/json")

    failure(response, 404)


def test_a_csrf_failure_under_api_is_enveloped(rf):
    from leadmarket.api.views import csrf_failure

    response = csrf_failure(rf.post("/api/v1/agencies/profile"), reason="no cookie")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"


def test_a_value_the_database_cannot_hold_is_400(api_client, monkeypatch):
    def overflow(**kwargs):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(agency_services, "register_agency", overflow)

    response = api_client.post(REGISTER, {"email": "a@example.com", "password": "x" * 12, "business_name": "A"})

    failure(response, 400)


def test_envelopes_built_outside_drf_are_compact_utf8_like_drfs():
    from leadmarket.api.envelope import failure_response, success_response

    for response in (success_response({"name": "Zoë"}, "Créé", 201), failure_response(400, "Zoë", {"x": ["é"]})):
        assert response["Content-Type"] == "application/json"
        assert "Zoë".encode() in response.content  # not \u00eb
        assert b'", "' not in response.content
