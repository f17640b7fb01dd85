"""POST /api/webhooks/<code>: auth, bodies, mapping, validation, idempotency, audit."""

import json
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from psycopg import pq

from leads.models import Lead, LeadStatus
from portals.models import Reception, ReceptionOutcome
from portals.tests.factories import make_portal
from portals.tests.helpers import LEAD, WEBHOOK, assert_failure, assert_success, post_form, post_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal_key():
    return make_portal("acme")


# --- auth matrix ---------------------------------------------------------------------------


def test_valid_key_in_header_stores_the_lead(api_client, portal_key):
    _, key = portal_key

    data = assert_success(post_json(api_client, "acme", LEAD, key), 201)

    lead = Lead.objects.get(pk=data["lead_id"])
    assert data["status"] == "new" == lead.status
    assert (lead.phone, lead.email, lead.city, lead.state) == ("+12125550100", "ada@example.com", "New York", "NY")
    reception = Reception.objects.get()
    assert (reception.outcome, reception.status_code, reception.lead_id) == ("accepted", 201, lead.pk)


@pytest.mark.parametrize("variant", ["missing", "wrong", "other-portal", "query-string"])
def test_bad_credentials_are_401_and_audited(api_client, portal_key, variant):
    _, key = portal_key
    _, other_key = make_portal("other")
    url = WEBHOOK.format("acme")
    body = json.dumps(LEAD)
    headers = {
        "missing": {},
        "wrong": {"HTTP_X_API_KEY": key[:-1] + "x"},
        "other-portal": {"HTTP_X_API_KEY": other_key},
        "query-string": {},
    }[variant]
    if variant == "query-string":
        url += f"?api_key={key}&X-API-Key={key}&key={key}"

    body = assert_failure(api_client.post(url, data=body, content_type="application/json", **headers), 401)

    assert key not in json.dumps(body)
    assert not Lead.objects.exists()
    reception = Reception.objects.get()
    assert (reception.outcome, reception.status_code, reception.payload) == ("unauthorized", 401, None)


def test_key_in_a_declared_body_field_is_accepted_and_never_stored(api_client):
    _, key = make_portal("adsy", key_location="body_field", key_field="secret_key", redact_fields=["token"])

    data = assert_success(post_json(api_client, "adsy", LEAD | {"secret_key": key, "token": "t0k", "x": 1}), 201)
    wrong = assert_failure(post_json(api_client, "adsy", LEAD | {"external_id": "2", "secret_key": "nope"}), 401)
    header_only = post_json(api_client, "adsy", LEAD | {"external_id": "3"}, key)

    assert wrong["errors"]["api_key"]
    assert_failure(header_only, 401)
    lead = Lead.objects.get(pk=data["lead_id"])
    assert lead.details == {"x": 1}
    stored = json.dumps(list(Reception.objects.values("payload", "payload_text", "headers")))
    assert key not in stored
    assert "t0k" not in stored


def test_unknown_and_inactive_portals_are_404_and_audited(api_client, portal_key):
    portal, key = portal_key
    portal.is_active = False
    portal.save()

    assert_failure(post_json(api_client, "nope", LEAD, key), 404)
    assert_failure(post_json(api_client, "acme", LEAD, key), 404)

    outcomes = sorted(Reception.objects.values_list("portal_code", "outcome", "portal_id"))
    assert outcomes == [("acme", "not_found", None), ("nope", "not_found", None)]


# --- body formats ------------------------------------------------------------------------------


def test_form_encoded_body_is_accepted(api_client, portal_key):
    _, key = portal_key

    data = assert_success(post_form(api_client, "acme", urlencode(LEAD | {"utm_source": "fb"}), key), 201)

    assert Lead.objects.get(pk=data["lead_id"]).details == {"utm_source": "fb"}


def test_json_inside_a_form_field_is_accepted(api_client):
    _, key = make_portal("formy", json_form_field="payload", key_location="body_field", key_field="key")
    raw = urlencode({"payload": json.dumps(LEAD | {"extra": [1, 2]}), "key": key, "campaign": "spring"})

    data = assert_success(post_form(api_client, "formy", raw), 201)

    assert Lead.objects.get(pk=data["lead_id"]).details == {"extra": [1, 2], "campaign": "spring"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x", ""])
def test_unsupported_media_types_are_415(api_client, portal_key, content_type):
    _, key = portal_key

    response = api_client.generic(
        "POST", WEBHOOK.format("acme"), json.dumps(LEAD), content_type=content_type, HTTP_X_API_KEY=key
    )

    assert_failure(response, 415)
    assert Reception.objects.get().outcome == "unsupported"


# --- mapping through the webhook ---------------------------------------------------------------


def test_a_portal_mapping_turns_its_own_payload_into_a_lead(api_client):
    mapping = {
        "fields": {
            "zipcode": {"path": "answers", "pick": {"key": "id", "equals": "zip"}, "transforms": ["trim", "digits"]},
            "first_name": {"path": "contact.name", "split_name": "first"},
            "last_name": {"path": "contact.name", "split_name": "last"},
            "email": {"path": "contact.email", "transforms": ["trim", "lower"]},
            "lead_type": {"const": "home"},
            "external_id": "meta.id",
        }
    }
    _, key = make_portal("leadform", mapping=mapping)
    payload = {
        "meta": {"id": 991},
        "contact": [{"name": "José Álvarez-Núñez", "email": " JOSE@Example.COM "}],
        "answers": [{"id": "zip", "value": " 10001 "}, {"id": "roof", "value": "tile"}],
    }

    data = assert_success(post_json(api_client, "leadform", payload, key), 201)

    lead = Lead.objects.get(pk=data["lead_id"])
    assert (lead.first_name, lead.last_name, lead.email) == ("José", "Álvarez-Núñez", "jose@example.com")
    assert (lead.zipcode, lead.lead_type, lead.external_id) == ("10001", "home", "991")
    assert lead.details == {"answers": [{"id": "roof", "value": "tile"}]}


def test_default_lead_type_of_the_portal_applies(api_client):
    _, key = make_portal("autos", default_lead_type="auto")

    data = assert_success(post_json(api_client, "autos", LEAD, key), 201)

    assert Lead.objects.get(pk=data["lead_id"]).lead_type == "auto"


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"zipcode": "00000"}, "zipcode"),
        ({"zipcode": None}, "zipcode"),
        ({"email": "not-an-email"}, "email"),
        ({"phone": "123"}, "phone"),
        ({"phone": "", "email": ""}, "non_field_errors"),
        ({"first_name": {"a": 1}}, "first_name"),
        ({"consented_at": "yesterday"}, "consented_at"),
        ({"consent_ip": "999.1.1.1"}, "consent_ip"),
        ({"certificate_url": "javascript:alert(1)"}, "certificate_url"),
        ({"tcpa_consent": "maybe"}, "tcpa_consent"),
        ({"first_name": "x" * 101}, "first_name"),
    ],
)
def test_invalid_leads_are_400_with_field_errors_and_audited(api_client, portal_key, change, field):
    _, key = portal_key

    body = assert_failure(post_json(api_client, "acme", LEAD | change, key), 400)

    assert field in body["errors"]
    reception = Reception.objects.get()
    assert (reception.outcome, reception.status_code) == ("invalid", 400)
    assert field in reception.errors
    assert reception.payload is not None


def test_consent_data_is_stored(api_client, portal_key):
    _, key = portal_key
    consent = {
        "tcpa_consent": "yes",
        "consent_text": "I agree to be contacted.",
        "consented_at": "2026-01-02T03:04:05Z",
        "consent_ip": "203.0.113.9",
        "certificate_url": "https://cert.example.com/abc",
    }

    data = assert_success(post_json(api_client, "acme", LEAD | consent, key), 201)

    lead = Lead.objects.get(pk=data["lead_id"])
    assert lead.tcpa_consent is True
    assert lead.consented_at.isoformat() == "2026-01-02T03:04:05+00:00"
    assert (lead.consent_ip, lead.certificate_url) == ("203.0.113.9", "https://cert.example.com/abc")


# --- hostile input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email": "a@x.com",',
        b"[1, 2, 3]",
        b'"just a string"',
        b"null",
        ("[" * 300 + "]" * 300).encode(),
        ('{"a":' * 300 + "1" + "}" * 300).encode(),
        ("[" * 100000 + "]" * 100000).encode(),
        b'{"first_name": "a\\u0000b", "email": "a@x.com", "zipcode": "10001"}',
        b'{"first_name\\u0000": "a", "email": "a@x.com", "zipcode": "10001"}',
        b'{"first_name": "\\ud800", "email": "a@x.com", "zipcode": "10001"}',
        b'{"score": NaN, "email": "a@x.com", "zipcode": "10001"}',
        b'{"score": 1e999, "email": "a@x.com", "zipcode": "10001"}',
        b'{"score": ' + b"9" * 5000 + b"}",
        b"\xff\xfe{}",
        b"",
    ],
    ids=[
        "truncated",
        "array",
        "string",
        "null",
        "300-arrays",
        "300-objects",
        "100k-deep",
        "nul-value",
        "nul-key",
        "lone-surrogate",
        "nan",
        "infinity",
        "huge-int",
        "not-utf8",
        "empty",
    ],
)
def test_malformed_bodies_are_400_never_500(api_client, portal_key, raw):
    _, key = portal_key

    body = assert_failure(post_json(api_client, "acme", raw, key), 400)

    assert "body" in body["errors"]
    reception = Reception.objects.get()
    assert reception.outcome == "invalid"
    assert "\x00" not in reception.payload_text


def test_a_body_over_the_limit_is_413_and_audited(api_client, portal_key):
    _, key = portal_key
    huge = json.dumps(LEAD | {"blob": "x" * (2 * 1024 * 1024)})

    assert_failure(post_json(api_client, "acme", huge, key), 413)

    reception = Reception.objects.get()
    assert (reception.outcome, reception.payload, reception.payload_text) == ("too_large", None, "")


def test_the_body_limit_is_a_setting(api_client, portal_key, settings):
    _, key = portal_key
    settings.WEBHOOK_MAX_BODY_BYTES = 100

    assert_failure(post_json(api_client, "acme", LEAD | {"pad": "x" * 200}, key), 413)


def test_unicode_sql_and_html_are_stored_verbatim(api_client, portal_key):
    _, key = portal_key
    nasty = {
        "first_name": "Robert'); DROP TABLE leads_lead;--",
        "last_name": "<script>alert('x')</script>",
        "address": "北京市 🚀 Straße",
        "notes": "' OR 1=1 --",
    }

    data = assert_success(post_json(api_client, "acme", LEAD | nasty, key), 201)

    lead = Lead.objects.get(pk=data["lead_id"])
    assert (lead.first_name, lead.last_name, lead.address) == (
        nasty["first_name"],
        nasty["last_name"],
        nasty["address"],
    )
    assert lead.details == {"notes": "' OR 1=1 --"}
    assert Lead.objects.count() == 1


def test_a_large_payload_is_stored_truncated_in_the_reception(api_client, portal_key, settings):
    _, key = portal_key
    settings.RECEPTION_PAYLOAD_MAX_BYTES = 1024

    assert_success(post_json(api_client, "acme", LEAD | {"pad": "y" * 5000}, key), 201)

    reception = Reception.objects.get()
    assert reception.payload is None
    assert reception.payload_truncated is True
    assert len(reception.payload_text.encode()) <= 1024


# --- idempotency and duplicates --------------------------------------------------------------


def test_resending_the_same_external_id_returns_the_original(api_client, portal_key):
    _, key = portal_key

    first = assert_success(post_json(api_client, "acme", LEAD, key), 201)
    again = assert_success(post_json(api_client, "acme", LEAD | {"first_name": "Changed"}, key), 201)

    assert first["lead_id"] == again["lead_id"]
    assert Lead.objects.count() == 1
    assert list(Reception.objects.order_by("id").values_list("outcome", "lead_id")) == [
        ("accepted", first["lead_id"]),
        ("duplicate_resent", first["lead_id"]),
    ]


def test_resending_with_the_same_idempotency_key_returns_the_original(api_client, portal_key):
    _, key = portal_key
    lead = LEAD | {"external_id": ""}

    first = assert_success(post_json(api_client, "acme", lead, key, HTTP_IDEMPOTENCY_KEY="abc"), 201)
    again = assert_success(post_json(api_client, "acme", lead, key, HTTP_IDEMPOTENCY_KEY="abc"), 201)

    assert first["lead_id"] == again["lead_id"]
    assert Lead.objects.count() == 1


def test_an_overlong_idempotency_key_is_a_400_and_audited(api_client, portal_key):
    _, key = portal_key

    response = post_json(api_client, "acme", LEAD, key, HTTP_IDEMPOTENCY_KEY="k" * 256)

    assert assert_failure(response, 400)["errors"] == {"idempotency_key": ["At most 255 characters."]}
    assert not Lead.objects.exists()
    reception = Reception.objects.get()
    assert (reception.outcome, reception.status_code, reception.idempotency_key) == ("invalid", 400, "k" * 255)


def test_the_same_external_id_on_another_portal_is_another_lead(api_client, portal_key):
    _, key = portal_key
    _, other_key = make_portal("other")

    first = assert_success(post_json(api_client, "acme", LEAD, key), 201)
    second = assert_success(post_json(api_client, "other", LEAD, other_key), 201)

    assert first["lead_id"] != second["lead_id"]
    assert second["status"] == "duplicate"


def test_same_phone_and_zip_from_another_portal_is_a_linked_duplicate(api_client, portal_key):
    _, key = portal_key
    _, other_key = make_portal("other")
    original = assert_success(post_json(api_client, "acme", LEAD, key), 201)

    by_phone = assert_success(
        post_json(api_client, "other", LEAD | {"external_id": "o-1", "email": "else@example.com"}, other_key), 201
    )
    by_email = assert_success(
        post_json(api_client, "other", LEAD | {"external_id": "o-2", "phone": "2125550199"}, other_key), 201
    )
    other_zip = assert_success(
        post_json(api_client, "other", LEAD | {"external_id": "o-3", "zipcode": "90210"}, other_key), 201
    )

    for data in (by_phone, by_email):
        lead = Lead.objects.get(pk=data["lead_id"])
        assert (lead.status, lead.duplicate_of_id) == (LeadStatus.DUPLICATE, original["lead_id"])
    assert other_zip["status"] == "new"
    outcomes = list(Reception.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["accepted", "duplicate_lead", "duplicate_lead", "accepted"]


def test_duplicates_are_only_looked_for_within_the_window(api_client, portal_key):
    _portal, key = portal_key
    first = assert_success(post_json(api_client, "acme", LEAD, key), 201)
    Lead.objects.filter(pk=first["lead_id"]).update(received_at="2000-01-01T00:00:00Z")

    data = assert_success(post_json(api_client, "acme", LEAD | {"external_id": "later"}, key), 201)

    assert data["status"] == "new"


def test_test_leads_are_stored_as_test_and_do_not_make_duplicates(
    api_client, portal_key, django_capture_on_commit_callbacks
):
    _, key = portal_key

    with django_capture_on_commit_callbacks() as callbacks:
        test = assert_success(post_json(api_client, "acme", LEAD | {"is_test": True}, key), 201)
    real = assert_success(post_json(api_client, "acme", LEAD | {"external_id": "real"}, key), 201)

    assert test["status"] == "test"
    assert callbacks == []  # never handed to distribution
    assert real["status"] == "new"


def test_a_new_lead_is_handed_to_distribution_after_commit(
    api_client, portal_key, django_capture_on_commit_callbacks, monkeypatch
):
    _, key = portal_key
    queued = []
    monkeypatch.setattr("leads.tasks.distribute_new_leads.apply_async", lambda **kwargs: queued.append(kwargs))

    with django_capture_on_commit_callbacks(execute=True):
        assert_success(post_json(api_client, "acme", LEAD, key), 201)

    assert queued == [{"kwargs": {}, "countdown": settings.DISTRIBUTION_DELAY_SECONDS, "retry": False}]


# --- throttling and faults -------------------------------------------------------------------


def test_a_portal_over_its_rate_limit_gets_429_with_retry_after(api_client):
    _, key = make_portal("slow", rate_limit="2/m")

    for number in range(2):
        assert_success(post_json(api_client, "slow", LEAD | {"external_id": str(number)}, key), 201)
    response = post_json(api_client, "slow", LEAD | {"external_id": "3"}, key)

    assert_failure(response, 429)
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Reception.objects.filter(outcome="throttled", status_code=429).count() == 1


def test_repeated_bad_keys_from_one_address_are_throttled(api_client, portal_key, settings):
    settings.WEBHOOK_AUTH_FAILURE_RATE_PER_IP = "3/m"

    statuses = [post_json(api_client, "acme", LEAD, "bad").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]


def test_database_down_is_503_with_retry_after(api_client, portal_key, monkeypatch):
    _, key = portal_key

    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("portals.services.create_lead", down)

    response = post_json(api_client, "acme", LEAD, key)

    assert_failure(response, 503)
    assert response["Retry-After"]


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_an_enveloped_405_and_store_nothing(api_client, portal_key, method):
    _, key = portal_key

    response = getattr(api_client, method)(WEBHOOK.format("acme"), HTTP_X_API_KEY=key)

    assert_failure(response, 405)
    assert not Lead.objects.exists()
    assert not Reception.objects.exists()


def test_answers_are_compact_json_like_every_other_endpoint(api_client, portal_key):
    _, key = portal_key

    accepted = post_json(api_client, "acme", LEAD, key)
    invalid = post_json(api_client, "acme", {**LEAD, "zipcode": "x"}, key)

    for response in (accepted, invalid):
        assert response["Content-Type"] == "application/json"
        compact = json.dumps(response.json(), separators=(",", ":"), ensure_ascii=False).encode()
        assert response.content == compact


def test_an_unexpected_error_is_a_500_envelope_and_audited(api_client, portal_key, monkeypatch):
    _, key = portal_key

    def broken(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("portals.services.create_lead", broken)

    body = assert_failure(post_json(api_client, "acme", LEAD, key), 500)

    assert "bug" not in json.dumps(body)
    reception = Reception.objects.get()
    assert (reception.outcome, reception.status_code) == ("error", 500)
    assert reception.payload["email"] == "ada@example.com"


def test_every_outcome_leaves_a_reception_row(api_client, settings):
    _, key = make_portal("all", rate_limit="5/m")  # accepted, resent, duplicate, invalid, accepted
    settings.WEBHOOK_MAX_BODY_BYTES = 4096
    assert_success(post_json(api_client, "all", LEAD, key), 201)
    assert_success(post_json(api_client, "all", LEAD, key), 201)
    assert_success(post_json(api_client, "all", LEAD | {"external_id": "2"}, key), 201)
    assert_failure(post_json(api_client, "all", LEAD | {"external_id": "3", "zipcode": "1"}, key), 400)
    assert_failure(post_json(api_client, "all", LEAD, "wrong"), 401)
    assert_failure(post_json(api_client, "none", LEAD, key), 404)
    assert_failure(post_json(api_client, "all", {"pad": "x" * 5000}, key), 413)
    assert_failure(api_client.post(WEBHOOK.format("all"), "x", content_type="text/plain", HTTP_X_API_KEY=key), 415)
    assert_success(
        post_json(api_client, "all", LEAD | {"external_id": "4", "phone": "2125550111", "email": "b@example.com"}, key),
        201,
    )
    assert_failure(post_json(api_client, "all", LEAD | {"external_id": "5"}, key), 429)

    outcomes = list(Reception.objects.order_by("id").values_list("outcome", flat=True))

    assert outcomes == [
        "accepted",
        "duplicate_resent",
        "duplicate_lead",
        "invalid",
        "unauthorized",
        "not_found",
        "too_large",
        "unsupported",
        "accepted",
        "throttled",
    ]
    assert set(ReceptionOutcome.values) - set(outcomes) == {"error"}  # see test_an_unexpected_error_...


@pytest.mark.django_db(transaction=True)
def test_the_ingest_is_one_prepared_pipeline_without_a_transaction_round_trip(api_client, portal_key, monkeypatch):
    monkeypatch.setattr("leads.tasks.distribute_new_leads.apply_async", lambda **kwargs: None)  # no real broker
    _, key = portal_key
    assert_success(post_json(api_client, "acme", LEAD, key), 201)  # loads the portal into the process cache
    pipelined = []

    def record(execute, sql, params, many, context):
        pipelined.append(connection.connection.pgconn.pipeline_status == pq.PipelineStatus.ON)
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(record):
        data = assert_success(post_json(api_client, "acme", LEAD | {"external_id": "2", "email": "b@x.com"}, key), 201)

    # The duplicate locks of (ZIP code, phone) and (ZIP code, email), then the lead's insert
    # (with its duplicate check) and the reception's, sent together in one pipeline: one
    # round trip, its own transaction, no BEGIN or COMMIT (Django logs those too). The same
    # phone makes it a duplicate, and its reception says so.
    assert [query["sql"][:29] for query in queries] == ["SELECT pg_advisory_xact_lock("] * 2 + [
        "WITH original AS (SELECT (SEL"
    ]
    assert pipelined == [True, True, True]
    assert "INSERT INTO leads_lead" in queries[2]["sql"]
    assert 'INSERT INTO "portals_reception"' in queries[2]["sql"]
    assert data["status"] == LeadStatus.DUPLICATE
    reception = Reception.objects.get(lead_id=data["lead_id"])
    assert (reception.outcome, reception.status_code, reception.portal.code) == ("duplicate_lead", 201, "acme")
    # Prepared on this connection by the first lead: PostgreSQL parsed and planned it once.
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["WITH original AS%"])
        assert len(cursor.fetchall()) == 1
